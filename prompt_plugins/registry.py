"""Method registry: ``wrap(model, classnames, method=...)`` and ``from_pretrained(model, directory)``.

A method is a name, the typed configs its keyword options fill, and two functions::

    build(target, classnames, *configs) -> adapter           # one config instance per ``options`` type
    load(target, config, state, classnames, options) -> adapter   # options: the checked load keywords

``target`` (:class:`Target`) carries the user's model, its backend (resolved once) and the tokenizer.
Methods register themselves when ``prompt_plugins.methods`` is imported (``import prompt_plugins`` does
it); this module imports none of them.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterator, Sequence

from torch import nn

from .attachment import attached_wrapper
from .backends import Backend, Tokenizer, resolve
from .checkpoint import check_backbone, read_adapter
from .config import Config, split_options
from .errors import ConfigError
from .tokenization import as_tokenizer, check_classnames


@dataclass
class Target:
    """The model a method attaches to; its backend and default tokenizer are resolved on first use
    (once), so a method that drives a foreign (non-CLIP) model never asks for them."""

    model: nn.Module
    tokenizer_arg: Any = None

    @cached_property
    def backend(self) -> Backend:
        return resolve(self.model)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        if self.tokenizer_arg is not None:
            return as_tokenizer(self.tokenizer_arg)
        return self.backend.default_tokenizer()


@dataclass(frozen=True)
class Method:
    name: str
    build: Callable[..., nn.Module]
    load: Callable[..., nn.Module]
    doc: str = ""
    #: typed configs of ``wrap``'s keyword options (``tokenizer`` is always accepted)
    options: tuple[type[Config], ...] = ()
    #: typed configs whose fields ``from_pretrained`` accepts as keywords (overrides)
    load_options: tuple[type[Config], ...] = field(default=())
    #: the option configs of one ``wrap`` call, from its keywords (a method built over another one: DPC's
    #: ``backbone=``); None: ``options``
    options_for: Callable[[dict[str, Any]], tuple[type[Config], ...]] | None = None

    def option_types(self, options: dict[str, Any]) -> tuple[type[Config], ...]:
        return self.options if self.options_for is None else tuple(self.options_for(options))


METHODS: dict[str, Method] = {}


def register_method(name: str, build: Callable[..., nn.Module], load: Callable[..., nn.Module], doc: str = "", *,
                    options: tuple[type[Config], ...] = (), load_options: tuple[type[Config], ...] = (),
                    options_for: Callable[[dict[str, Any]], tuple[type[Config], ...]] | None = None) -> None:
    METHODS[name] = Method(name, build, load, doc, tuple(options), tuple(load_options), options_for)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known methods: {sorted(METHODS)}")
    return METHODS[name]


def wrap(model: nn.Module, classnames: Sequence[str], method: str = "coop", **options: Any) -> nn.Module:
    """Attach a prompt-tuning method to ``model`` in one line.

    >>> prompted = wrap(model, ["cat", "dog"], method="coop", ctx_init="a photo of a")
    >>> logits = prompted(images)            # (B, 2)
    """
    m = get_method(method)
    target = Target(model, options.pop("tokenizer", None))
    types = m.option_types(options)
    given = split_options("method", m.name, options, types, extra=("tokenizer",))
    with _detached_on_failure(model):
        return m.build(target, classnames, *(cls(**values) for cls, values in zip(types, given)))


def from_pretrained(model: nn.Module, directory: str | os.PathLike, classnames: Sequence[str] | None = None, *,
                    allow_other_backend: bool = False, **options: Any) -> nn.Module:
    """Rebuild a saved adapter on ``model``; ``classnames`` may differ from the saved list (unless the prompt
    is class-specific). An adapter saved on another CLIP library (same shapes) loads with a
    ``BackendMismatchWarning`` unless ``allow_other_backend=True`` says the weights are the same CLIP."""
    if not isinstance(allow_other_backend, bool):
        raise ConfigError(f"allow_other_backend must be True or False, got {allow_other_backend!r}")
    config, state = read_adapter(directory)
    names = None if classnames is None else check_classnames(classnames)
    m = get_method(config.method)
    target = Target(model, options.pop("tokenizer", None))
    given = split_options("from_pretrained of method", m.name, options, m.load_options,
                          extra=("tokenizer", "allow_other_backend"))
    if config.backbone:
        check_backbone(config.backbone, target.backend.fingerprint(), allow_other_backend=allow_other_backend)
    with _detached_on_failure(model):
        return m.load(target, config, state, names, {k: v for part in given for k, v in part.items()})


@contextmanager
def _detached_on_failure(model: Any) -> Iterator[None]:
    """A build or load that fails after attaching a wrapper to ``model`` ejects it, so the model is left as it
    was and a retry is not refused as a second wrap (the half-built wrapper lives on in the traceback)."""
    before = attached_wrapper(model) if isinstance(model, nn.Module) else None
    try:
        yield
    except BaseException:
        after = attached_wrapper(model) if isinstance(model, nn.Module) else None
        if after is not None and after is not before:
            after.eject()
        raise
