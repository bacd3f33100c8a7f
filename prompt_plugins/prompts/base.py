"""What a prompt module produces, and the small registry that rebuilds one from its config."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Callable, ClassVar, Mapping

import torch
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
    image_head:  (N, E) -> (N, E') applied to every frame's image feature before pooling and normalising
                 (PromptKD's projector into the teacher's space); None: the CLIP's own features
    class_features: (C, E') class features for the wrapper's class list, used in place of the text tower
                 (PromptKD's teacher text features); None: encode the class prompts
    """

    text: Tensor | None = None
    text_deep: Tensor | None = None
    visual: Tensor | None = None
    visual_deep: Tensor | None = None
    temporal: Tensor | None = None
    image_head: Callable[[Tensor], Tensor] | None = None
    class_features: Tensor | None = None

    def has_visual(self) -> bool:
        return self.visual is not None

    def map(self, fn) -> "Prompts":
        """``fn`` applied to every tensor field (``image_head`` is kept as it is)."""
        return Prompts(**{f.name: (value if value is None or not isinstance(value, Tensor) else fn(value))
                          for f in fields(self) for value in (getattr(self, f.name),)})

    def without_temporal(self) -> "Prompts":
        return replace(self, temporal=None)

    def rounded(self, dtype: torch.dtype | None) -> "Prompts":
        """The token fields (text, text_deep, visual, visual_deep, temporal) cast to ``dtype`` (None: unchanged):
        the released trainers' ``.half()`` at every insertion; the towers then cast them to their own dtype, so on
        a fp32 model the prompts enter rounded to fp16 and gradients flow through the casts."""
        if dtype is None:
            return self
        return replace(self, **{name: value.to(dtype) for name in TOKEN_FIELDS
                                if (value := getattr(self, name)) is not None})


#: the ``Prompts`` fields that enter a tower as tokens
TOKEN_FIELDS = ("text", "text_deep", "visual", "visual_deep", "temporal")


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
    #: True when ``forward()`` may return ``class_features`` / ``image_head``: ``PromptedCLIP`` then asks for the
    #: prompts on every text / image request (otherwise only when they can matter, so a coupler's dropout is
    #: not drawn for nothing)
    provides_class_features: ClassVar[bool] = False
    provides_image_head: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type_name:
            PROMPT_TYPES[cls.type_name] = cls

    def forward(self) -> Prompts:  # pragma: no cover - abstract
        raise NotImplementedError

    def prompt_tensor_names(self) -> list[str]:
        """The learnable prompt tensors of this module, by ``named_parameters`` name: what a method built on
        top of a trained backbone (DPC's parallel prompt) clones. Default: every parameter (context, deep
        prompts, couplers, projections); a module overrides it only to leave some parameter out."""
        return [name for name, _ in self.named_parameters()]

    def affects_image(self) -> bool:
        """True when the prompts change image features (visual prompts or an ``image_head``), asked without
        drawing from the random stream a training loop uses (a coupler's dropout)."""
        tensors = [*self.parameters(), *self.buffers()]
        devices = [] if not tensors or tensors[0].device.type == "cpu" else [tensors[0].device]
        with torch.no_grad(), torch.random.fork_rng(devices=devices,
                                                     device_type=devices[0].type if devices else "cuda"):
            out = self()
        return out.visual is not None or out.image_head is not None

    def bind_classnames(self, classnames: list[str]) -> None:
        """Called by ``PromptedCLIP.set_classnames`` with the new class list (after it was checked); a module
        whose prompts depend on the class names (stored class features) selects them here or raises
        ``ClassNameError``. Default: nothing."""

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
