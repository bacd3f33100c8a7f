"""CoOp soft prompts, optionally deep (IVLP / MaPLe-style independent per-layer prompts) in both towers."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .base import PromptModule, Prompts


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{name}={value} is out of range: it must be {bound}")
    return value


class SoftPrompt(PromptModule):
    """Learnable context vectors (CoOp), fp32, cast to the model's dtype where they are used.

    Parameters (all optional except ``ctx``):
      ctx          (n_ctx, Dt), or (C, n_ctx, Dt) with ``class_specific=True`` (CoOp's CSC)
      text_deep    (depth - 1, n_ctx, Dt): a separate prompt per text block 1 .. depth-1
      visual       (n_visual_ctx, Dv): tokens appended to the visual sequence
      visual_deep  (visual_depth - 1, n_visual_ctx, Dv)
      temporal     (temporal_frames, n_visual_ctx, Dv): per-frame offsets added to ``visual`` for
                   videos of exactly ``temporal_frames`` frames; zero-initialised, so training
                   starts from frame-shared prompts (``temporal_frames=0``, the default: none)

    ``init`` is an optional (n_ctx, Dt) tensor for ``ctx`` (the embeddings of ``ctx_init``
    words); otherwise everything starts from N(0, init_std²) as in CoOp/IVLP.
    """

    type_name = "soft"

    def __init__(
        self,
        text_width: int,
        n_ctx: int = 16,
        *,
        init: Tensor | None = None,
        ctx_init: str | None = None,
        class_specific: bool = False,
        n_classes: int | None = None,
        depth: int = 1,
        max_depth: int | None = None,
        vision_width: int = 0,
        n_visual_ctx: int = 0,
        visual_depth: int | None = None,
        max_visual_depth: int | None = None,
        init_std: float = 0.02,
        temporal_frames: int = 0,
    ):
        super().__init__()
        self.n_ctx = _check_int("n_ctx", n_ctx, 1)
        self.depth = _check_int("depth", depth, 1, max_depth)
        self.n_visual_ctx = _check_int("n_visual_ctx", n_visual_ctx, 0)
        if visual_depth is None:  # follow the text depth, capped by the visual tower
            visual_depth = depth if max_visual_depth is None else min(depth, max_visual_depth)
        if self.n_visual_ctx:
            if not vision_width:
                raise ConfigError("n_visual_ctx > 0 needs a ViT visual tower (vision_width is 0)")
            self.visual_depth = _check_int("visual_depth", visual_depth, 1, max_visual_depth)
        else:
            self.visual_depth = 0
        self.class_specific = bool(class_specific)
        self._ctx_init = ctx_init
        self.init_std = float(init_std)
        if self.class_specific and not n_classes:
            raise ConfigError("class_specific=True needs n_classes")
        shape = (n_classes, self.n_ctx, text_width) if self.class_specific else (self.n_ctx, text_width)
        ctx = torch.empty(shape).normal_(0.0, self.init_std)
        if init is not None:
            if tuple(init.shape) != (self.n_ctx, text_width):
                raise ConfigError(f"init has shape {tuple(init.shape)}, expected {(self.n_ctx, text_width)}")
            ctx[...] = init.detach().float()
        self.ctx = nn.Parameter(ctx)
        self.text_deep = (
            nn.Parameter(torch.empty(self.depth - 1, self.n_ctx, text_width).normal_(0.0, self.init_std))
            if self.depth > 1 else None
        )
        self.visual = (
            nn.Parameter(torch.empty(self.n_visual_ctx, vision_width).normal_(0.0, self.init_std))
            if self.n_visual_ctx else None
        )
        self.visual_deep = (
            nn.Parameter(torch.empty(self.visual_depth - 1, self.n_visual_ctx, vision_width).normal_(0.0, self.init_std))
            if self.n_visual_ctx and self.visual_depth > 1 else None
        )

        self.temporal_frames = _check_int("temporal_frames", temporal_frames, 0)
        if self.temporal_frames and not self.n_visual_ctx:
            raise ConfigError("temporal_frames > 0 needs visual prompts: set n_visual_ctx > 0")
        self.temporal = (
            nn.Parameter(torch.zeros(self.temporal_frames, self.n_visual_ctx, vision_width))
            if self.temporal_frames else None
        )

    @property
    def ctx_words(self) -> str | None:
        return self._ctx_init

    def forward(self) -> Prompts:
        return Prompts(text=self.ctx, text_deep=self.text_deep, visual=self.visual, visual_deep=self.visual_deep,
                       temporal=self.temporal)

    def config(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "n_ctx": self.n_ctx,
            "ctx_init": self._ctx_init,
            "class_specific": self.class_specific,
            "depth": self.depth,
            "n_visual_ctx": self.n_visual_ctx,
            "visual_depth": self.visual_depth or None,
            "init_std": self.init_std,
            **({"temporal_frames": self.temporal_frames} if self.temporal_frames else {}),
        }

    @classmethod
    def build(
        cls, backend, tokenizer, *, n_ctx: int | None = None, ctx_init: str | None = None,
        n_classes: int | None = None, **options: Any,
    ) -> "SoftPrompt":
        """Build for a backend; ``ctx_init`` words set ``ctx`` to their token embeddings
        (and ``n_ctx`` to their token count when not given)."""
        init = None
        if ctx_init is not None:
            if not isinstance(ctx_init, str) or not ctx_init.strip():
                raise ConfigError(f"ctx_init must be a non-empty string, got {ctx_init!r}")
            ids = tokenizer.encode(ctx_init)
            if n_ctx is None:
                n_ctx = len(ids)
            elif n_ctx != len(ids):
                raise ConfigError(f"ctx_init {ctx_init!r} is {len(ids)} tokens but n_ctx={n_ctx}; "
                                  "omit n_ctx or make them agree")
            with torch.no_grad():
                init = backend.embed_tokens(torch.tensor([ids], device=backend.device))[0].float().cpu()
        if options.get("n_visual_ctx"):
            backend.check_visual_prompts()
        return cls(
            backend.text_width, 16 if n_ctx is None else n_ctx, init=init, ctx_init=ctx_init,
            n_classes=n_classes, max_depth=backend.text_layers, vision_width=backend.vision_width,
            max_visual_depth=backend.vision_layers or None, **options,
        )

    @classmethod
    def from_config(cls, backend, tokenizer, config: dict[str, Any], n_classes: int) -> "SoftPrompt":
        options = {k: v for k, v in config.items() if k not in ("type",)}
        return cls.build(backend, tokenizer, n_classes=n_classes, **options)
