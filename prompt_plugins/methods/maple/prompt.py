"""``MaPLePrompt``: MaPLe's multi-modal prompt learner (spec backbones.md §1) as a ``PromptModule``.

Learned tensors (N = ``n_ctx``, J = ``depth``, Dt / Dv the text / vision widths of the model):

    ctx                          (N, Dt)        layer-0 text context
    proj                         Linear(Dt, Dv) layer-0 visual tokens = proj(ctx)
    compound_prompts_text        (J-1, N, Dt)   deep text prompts, replacing the context before text blocks 1..J-1
    compound_prompt_projections  J-1 x Linear(Dt, Dv): the couplers; deep visual prompt i = coupler i(text prompt i),
                                 replacing the appended visual tokens before visual blocks 1..J-1

Visual prompts are functions of the text prompts, so the text prompts get gradients from both towers. The widths
come from the model (the release hard-codes 512 -> 768). All parameters are fp32; ``PromptedCLIP`` casts the
prompts where they enter the towers (``prompt_dtype``).
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ...config import check_int
from ...errors import ConfigError, UnsupportedModelError
from ...prompts.base import PromptModule, Prompts
from .config import MaPLeConfig


class MaPLePrompt(PromptModule):
    """MaPLe prompts for a model of text width ``text_width`` and vision width ``vision_width``; ``init``: an
    optional (n_ctx, Dt) tensor for ``ctx`` (the embeddings of the learned ``ctx_init`` words)."""

    type_name = "maple"
    config_class = MaPLeConfig

    def __init__(self, text_width: int, vision_width: int, n_ctx: int = 2, depth: int = 9, *,
                 init: Tensor | None = None, ctx_init: str | None = None, coupler_init: str = "shared",
                 init_std: float = 0.02, max_depth: int | None = None):
        super().__init__()
        config = MaPLeConfig(n_ctx=n_ctx, ctx_init=ctx_init, depth=depth, coupler_init=coupler_init,
                             init_std=init_std)
        self.n_ctx, self.depth = config.n_ctx, check_int("depth", depth, 1, max_depth)
        self.coupler_init, self.init_std, self._ctx_init = config.coupler_init, config.init_std, config.ctx_init
        ctx = torch.empty(n_ctx, text_width).normal_(0.0, self.init_std)
        if init is not None:
            if tuple(init.shape) != (n_ctx, text_width):
                raise ConfigError(f"init has shape {tuple(init.shape)}, expected {(n_ctx, text_width)}")
            ctx[...] = init.detach().float()
        self.ctx = nn.Parameter(ctx)
        self.proj = nn.Linear(text_width, vision_width)
        self.compound_prompts_text = (
            nn.Parameter(torch.empty(depth - 1, n_ctx, text_width).normal_(0.0, self.init_std)) if depth > 1 else None)
        if config.coupler_init == "shared":
            first = nn.Linear(text_width, vision_width)
            couplers = [copy.deepcopy(first) for _ in range(depth - 1)]
        else:
            couplers = [nn.Linear(text_width, vision_width) for _ in range(depth - 1)]
        self.compound_prompt_projections = nn.ModuleList(couplers)

    @property
    def ctx_words(self) -> str | None:
        return self._ctx_init

    def forward(self) -> Prompts:
        """text (N, Dt) = ctx; visual (N, Dv) = proj(ctx); text_deep (J-1, N, Dt); visual_deep (J-1, N, Dv), each
        layer's coupler applied to that layer's text prompt."""
        deep = self.compound_prompts_text
        visual_deep = None
        if deep is not None:
            visual_deep = torch.stack([coupler(deep[i]) for i, coupler in enumerate(self.compound_prompt_projections)])
        return Prompts(text=self.ctx, text_deep=deep, visual=self.proj(self.ctx), visual_deep=visual_deep)

    def options(self) -> MaPLeConfig:
        return MaPLeConfig(n_ctx=self.n_ctx, ctx_init=self._ctx_init, depth=self.depth,
                           coupler_init=self.coupler_init, init_std=self.init_std)

    @staticmethod
    def max_depth(backend) -> int:
        """The deepest J the model takes: both towers need J blocks; a non-ViT visual tower is refused."""
        if not backend.vision_width or not backend.vision_layers:
            raise UnsupportedModelError(
                f"method='maple' couples text and visual prompts and needs a ViT visual tower; this "
                f"{backend.library or backend.name} model has none (a ResNet?). Use method='coop' (text prompts "
                "only) or a ViT CLIP")
        backend.check_visual_prompts()
        return min(backend.text_layers, backend.vision_layers)

    @classmethod
    def build(cls, backend, tokenizer, config: MaPLeConfig) -> "MaPLePrompt":
        """For a backend: widths and the deepest J from the model, ``ctx`` from the ``ctx_init`` words."""
        max_depth = cls.max_depth(backend)
        if config.depth > max_depth:
            raise ConfigError(f"depth={config.depth} is more than this model takes: MaPLe prompts enter blocks "
                              f"0..depth-1 of both towers, which have {backend.text_layers} text and "
                              f"{backend.vision_layers} visual blocks; pass depth <= {max_depth}")
        init = None
        if config.ctx_init is not None:
            ids = tokenizer.encode(config.ctx_init)
            if len(ids) != config.n_ctx:
                raise ConfigError(f"ctx_init {config.ctx_init!r} is {len(ids)} tokens but n_ctx={config.n_ctx}")
            with torch.no_grad():
                init = backend.embed_tokens(torch.tensor([ids], device=backend.device))[0].float().cpu()
        return cls(backend.text_width, backend.vision_width, config.n_ctx, config.depth, init=init,
                   ctx_init=config.ctx_init, coupler_init=config.coupler_init, init_std=config.init_std,
                   max_depth=max_depth)

    @classmethod
    def from_config(cls, backend, tokenizer, config: MaPLeConfig, n_classes: int) -> "MaPLePrompt":
        return cls.build(backend, tokenizer, config)
