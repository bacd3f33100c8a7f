"""CoOp soft prompts, optionally deep (IVLP / MaPLe-style independent per-layer prompts) in both towers."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..config import Config, check_int
from ..errors import ConfigError
from .base import PromptModule, Prompts


@dataclass
class DeepPromptConfig(Config):
    """Deep (IVLP/MaPLe-style) prompt options shared by every prompt module that has them.

    depth: text prompt depth (1: layer-0 context only); n_visual_ctx: visual prompt tokens (0: none);
    visual_depth: visual prompt depth (None: follow ``depth``, capped by the visual tower);
    init_std: std of the N(0, std²) initialisation; temporal_frames: T > 0 adds per-frame offsets.
    """

    depth: int = 1
    n_visual_ctx: int = 0
    visual_depth: int | None = None
    init_std: float = 0.02
    temporal_frames: int = 0

    def check(self) -> None:  # None: a default a subclass resolves later (GA2)
        if self.depth is not None:
            check_int("depth", self.depth, 1)
        if self.n_visual_ctx is not None:
            check_int("n_visual_ctx", self.n_visual_ctx, 0)
        if self.visual_depth is not None:
            check_int("visual_depth", self.visual_depth, 1)
        check_int("temporal_frames", self.temporal_frames, 0)
        if not math.isfinite(self.init_std) or self.init_std < 0:
            raise ConfigError(f"init_std={self.init_std} must be a finite number >= 0")


@dataclass
class SoftPromptConfig(DeepPromptConfig):
    """CoOp context: ``n_ctx`` tokens (None: 16, or the token count of ``ctx_init``), initialised from
    the words ``ctx_init``, one context per class with ``class_specific`` (CoOp's CSC)."""

    n_ctx: int | None = None
    ctx_init: str | None = None
    class_specific: bool = False

    def check(self) -> None:
        super().check()
        if self.n_ctx is not None:
            check_int("n_ctx", self.n_ctx, 1)
        if self.ctx_init is not None and not self.ctx_init.strip():
            raise ConfigError(f"ctx_init must be a non-empty string, got {self.ctx_init!r}")


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
    config_class = SoftPromptConfig

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
        self.n_ctx = check_int("n_ctx", n_ctx, 1)
        self.depth = check_int("depth", depth, 1, max_depth)
        self.n_visual_ctx = check_int("n_visual_ctx", n_visual_ctx, 0)
        if visual_depth is None:  # follow the text depth, capped by the visual tower
            visual_depth = depth if max_visual_depth is None else min(depth, max_visual_depth)
        if self.n_visual_ctx:
            if not vision_width:
                raise ConfigError("n_visual_ctx > 0 needs a ViT visual tower (vision_width is 0)")
            self.visual_depth = check_int("visual_depth", visual_depth, 1, max_visual_depth)
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

        self.temporal_frames = check_int("temporal_frames", temporal_frames, 0)
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

    def options(self) -> SoftPromptConfig:
        return SoftPromptConfig(
            n_ctx=self.n_ctx, ctx_init=self._ctx_init, class_specific=self.class_specific, depth=self.depth,
            n_visual_ctx=self.n_visual_ctx, visual_depth=self.visual_depth or None, init_std=self.init_std,
            temporal_frames=self.temporal_frames)

    @classmethod
    def build(cls, backend, tokenizer, config: SoftPromptConfig | None = None, *, n_classes: int | None = None,
              **options: Any) -> "SoftPrompt":
        """Build for a backend from ``config`` (or its fields as keywords); ``ctx_init`` words set ``ctx``
        to their token embeddings (and ``n_ctx`` to their token count when not given)."""
        config = SoftPromptConfig(**options) if config is None else config
        n_ctx, ctx_init = config.n_ctx, config.ctx_init
        init = None
        if ctx_init is not None:
            ids = tokenizer.encode(ctx_init)
            if n_ctx is None:
                n_ctx = len(ids)
            elif n_ctx != len(ids):
                raise ConfigError(f"ctx_init {ctx_init!r} is {len(ids)} tokens but n_ctx={n_ctx}; "
                                  "omit n_ctx or make them agree")
            with torch.no_grad():
                init = backend.embed_tokens(torch.tensor([ids], device=backend.device))[0].float().cpu()
        if config.n_visual_ctx:
            backend.check_visual_prompts()
        return cls(
            backend.text_width, 16 if n_ctx is None else n_ctx, init=init, ctx_init=ctx_init,
            class_specific=config.class_specific, n_classes=n_classes, depth=config.depth,
            max_depth=backend.text_layers, vision_width=backend.vision_width, n_visual_ctx=config.n_visual_ctx,
            visual_depth=config.visual_depth, max_visual_depth=backend.vision_layers or None,
            init_std=config.init_std, temporal_frames=config.temporal_frames,
        )

    @classmethod
    def from_config(cls, backend, tokenizer, config: SoftPromptConfig, n_classes: int) -> "SoftPrompt":
        return cls.build(backend, tokenizer, config, n_classes=n_classes)
