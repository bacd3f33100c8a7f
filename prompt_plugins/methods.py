"""Method registry: ``wrap(model, classnames, method=...)`` and ``from_pretrained(model, directory)``.

A method is a pair of functions: ``build(model, classnames, **options)`` for a fresh
adapter and ``load(model, config, state, classnames, tokenizer)`` for a saved one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from torch import nn

from .backends import resolve
from .checkpoint import check_backbone, read_adapter
from .errors import ConfigError
from .model import PromptedCLIP, check_method_options
from .prompts.base import prompt_type
from .prompts.soft import SoftPrompt
from .tokenization import as_tokenizer


@dataclass(frozen=True)
class Method:
    name: str
    build: Callable[..., nn.Module]
    load: Callable[..., nn.Module]
    doc: str = ""


METHODS: dict[str, Method] = {}


def register_method(name: str, build: Callable[..., nn.Module], load: Callable[..., nn.Module], doc: str = "") -> None:
    METHODS[name] = Method(name, build, load, doc)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known methods: {sorted(METHODS)}")
    return METHODS[name]


#: options of PromptedCLIP itself (the rest go to the prompt module)
MODEL_OPTIONS = ("tokenizer", "template", "zero_shot_template", "grad_checkpointing")
SOFT_OPTIONS = ("n_ctx", "ctx_init", "class_specific", "depth", "n_visual_ctx", "visual_depth", "init_std",
                "temporal_frames")


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    model_opts = {k: options[k] for k in MODEL_OPTIONS if k in options}
    rest = {k: v for k, v in options.items() if k not in MODEL_OPTIONS}
    return model_opts, rest


def _tokenizer_for(model: nn.Module, tokenizer: Any):
    return as_tokenizer(tokenizer) if tokenizer is not None else resolve(model).default_tokenizer()


def build_coop(model: nn.Module, classnames: Sequence[str], **options: Any) -> PromptedCLIP:
    """CoOp context (optionally class-specific) and IVLP/MaPLe-style deep prompts in both towers."""
    check_method_options("coop", options, MODEL_OPTIONS + SOFT_OPTIONS)
    model_opts, prompt_opts = split_options(options)
    backend = resolve(model)
    tokenizer = _tokenizer_for(model, model_opts.get("tokenizer"))
    prompt = SoftPrompt.build(backend, tokenizer, n_classes=len(list(classnames)), **prompt_opts)
    model_opts["tokenizer"] = tokenizer
    return PromptedCLIP(model, classnames, prompt, method="coop", **model_opts)


def load_prompted(model: nn.Module, config: dict[str, Any], state: dict, classnames: Sequence[str] | None,
                  tokenizer: Any = None, **model_options: Any) -> PromptedCLIP:
    """Rebuild a ``PromptedCLIP`` of any prompt type from its config and load its tensors."""
    backend = resolve(model)
    check_backbone(config.get("backbone"), backend.fingerprint())
    names = list(classnames) if classnames is not None else config.get("classnames")
    if not names:
        raise ConfigError("no class names: pass classnames=[...] (the checkpoint stores none)")
    prompt_cfg = dict(config.get("prompt") or {})
    cls = prompt_type(prompt_cfg.get("type", "soft"))
    tok = _tokenizer_for(model, tokenizer)
    if prompt_cfg.get("class_specific") and config.get("classnames") and len(names) != len(config["classnames"]):
        raise ConfigError(
            f"the checkpoint has class-specific context for {len(config['classnames'])} classes; "
            f"it cannot be loaded for {len(names)} classes")
    prompt = cls.from_config(backend, tok, prompt_cfg, n_classes=len(names))
    opts = {k: config[k] for k in ("template", "zero_shot_template") if k in config}
    opts.update(model_options)
    prompted = PromptedCLIP(model, names, prompt, tokenizer=tok, method=config.get("method", "coop"), **opts)
    prompted.load_adapter_state_dict(state)
    return prompted


register_method("coop", build_coop, load_prompted, "CoOp soft prompts (+ deep IVLP/MaPLe-style prompts)")


def wrap(model: nn.Module, classnames: Sequence[str], method: str = "coop", **options: Any) -> nn.Module:
    """Attach a prompt-tuning method to ``model`` in one line.

    >>> prompted = wrap(model, ["cat", "dog"], method="coop", ctx_init="a photo of a")
    >>> logits = prompted(images)            # (B, 2)
    """
    return get_method(method).build(model, classnames, **options)


def from_pretrained(model: nn.Module, directory: str | os.PathLike, classnames: Sequence[str] | None = None,
                    **options: Any) -> nn.Module:
    """Rebuild a saved adapter on ``model``; ``classnames`` may differ from the saved list
    (unless the prompt is class-specific)."""
    config, state = read_adapter(directory)
    method = config.get("method")
    if not isinstance(method, str):
        raise ConfigError(f"{directory}: adapter_config.json has no 'method'")
    return get_method(method).load(model, config, state, classnames, **options)


def _register_dpc() -> None:
    from .prompts.dual import build_dpc, load_dpc

    register_method("dpc", build_dpc, load_dpc, "DPC: frozen backbone prompt + parallel prompt for base classes")


_register_dpc()
from . import ga2 as _ga2  # noqa: E402,F401  registers method "ga2"
