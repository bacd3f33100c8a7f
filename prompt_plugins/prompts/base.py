"""What a prompt module produces, and the small registry that rebuilds one from its config."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Mapping

from torch import Tensor, nn

from ..config import Config
from ..errors import ConfigError


@dataclass
class Prompts:
    """Prompt tensors for one forward pass (any may be None).

    text:        (n_ctx, Dt) shared context, or (C, n_ctx, Dt) class-specific
    text_deep:   (depth - 1, n_ctx, Dt), replacing the context before text blocks 1 .. depth-1
    visual:      (n_vctx, Dv) tokens appended after the patch embedding (before ``ln_pre``)
    visual_deep: (vdepth - 1, n_vctx, Dv), replacing the appended tokens before visual blocks 1 ..
    temporal:    (T, n_vctx, Dv) per-frame offsets added to the visual tokens of video frames
    """

    text: Tensor | None = None
    text_deep: Tensor | None = None
    visual: Tensor | None = None
    visual_deep: Tensor | None = None
    temporal: Tensor | None = None

    def has_visual(self) -> bool:
        return self.visual is not None

    def map(self, fn) -> "Prompts":
        return Prompts(**{f.name: (None if getattr(self, f.name) is None else fn(getattr(self, f.name)))
                          for f in fields(self)})


PROMPT_TYPES: dict[str, type["PromptModule"]] = {}


class PromptModule(nn.Module):
    """Base of prompt modules: ``forward() -> Prompts``; ``options()`` returns its typed config (a
    ``config_class``), ``config()`` the JSON section ``{"type": ..., **options}`` saved with an adapter, and
    ``from_config(backend, tokenizer, options, n_classes)`` rebuilds an (untrained) module of the same shape."""

    type_name: ClassVar[str] = ""
    config_class: ClassVar[type[Config]]
    #: number of context slots the text template reserves
    n_ctx: int
    #: True when ``text`` is (C, n_ctx, Dt): the prompt depends on the class list
    class_specific: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type_name:
            PROMPT_TYPES[cls.type_name] = cls

    def forward(self) -> Prompts:  # pragma: no cover - abstract
        raise NotImplementedError

    def options(self) -> Config:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The ``"prompt"`` section of an adapter config."""
        return self.section(self.options())

    @classmethod
    def from_config(cls, backend, tokenizer, config: Config, n_classes: int) -> "PromptModule":
        raise NotImplementedError  # pragma: no cover

    @classmethod
    def section(cls, config: Config) -> dict[str, Any]:
        """The ``"prompt"`` section of an adapter config for a module of this type with ``config``."""
        return {"type": cls.type_name, **config.to_dict()}

    @property
    def ctx_words(self) -> str | None:
        """Words that fill the context slots in the token template (None: placeholders)."""
        return None


def prompt_type(name: str) -> type[PromptModule]:
    try:
        return PROMPT_TYPES[name]
    except KeyError:
        raise ConfigError(f"unknown prompt type {name!r}; known: {sorted(PROMPT_TYPES)}") from None


def prompt_from_dict(backend, tokenizer, data: Mapping[str, Any], n_classes: int,
                     where: str = "adapter_config.json 'prompt'") -> PromptModule:
    """Rebuild an (untrained) prompt module from the ``"prompt"`` section of an adapter config."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a JSON object, got {type(data).__name__}")
    cls = prompt_type(data.get("type", "soft"))
    config = cls.config_class.from_dict({k: v for k, v in data.items() if k != "type"}, where=where)
    return cls.from_config(backend, tokenizer, config, n_classes)
