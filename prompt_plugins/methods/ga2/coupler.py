"""GA2-CLIP hard-soft coupling: a frozen hard prompt coupled channel-wise with soft tokens.

    C = Dropout(act([H ‖ S] Wᵀ + b))        H, S: (n, Dt);  W: (Dt, 2·Dt);  C: (n, Dt)

C replaces the n text context tokens at layer 0 (as released) or, with ``couple="all"``, the
context of every deep text layer too (the same mapping, the layer's own soft tokens). Deep
text/visual prompts are plain IVLP prompts (a ``SoftPrompt`` inside), so GA2 = IVLP + coupler.
Unlike the released code, the hard prompt is a persistent buffer: it is saved with the adapter.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...prompts import PromptModule, Prompts, SoftPrompt
from .config import CouplerConfig

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "identity": nn.Identity, "tanh": nn.Tanh}


class HardSoftCoupler(PromptModule):
    """Frozen hard prompt ``hard`` (n, Dt) + soft prompts, coupled by ``proj`` (Linear 2·Dt -> Dt).

    Parameters: ``soft.*`` (a ``SoftPrompt``: ctx (n, Dt), optional text_deep/visual/visual_deep/temporal)
    and ``proj.weight`` (Dt, 2·Dt), ``proj.bias`` (Dt). Buffer: ``hard`` (n, Dt), saved, never trained.

    couple: "first" (layer-0 context only, as released) or "all" (every deep text layer as well).
    activation: "relu" (released), "gelu", "tanh" or "identity"; dropout: 0.5 (released).
    """

    type_name = "hard_soft"
    config_class = CouplerConfig

    def __init__(self, text_width: int, hard_prompt: Tensor, n_soft: int | None = None, *, couple: str = "first",
                 activation: str = "relu", dropout: float = 0.5, **soft_options: Any):
        super().__init__()
        if hard_prompt.dim() != 2 or hard_prompt.shape[1] != text_width:
            raise ConfigError(f"hard prompt has shape {tuple(hard_prompt.shape)}; this text tower needs "
                              f"(n_tokens, {text_width}). Was it trained on a different CLIP width?")
        n = hard_prompt.shape[0]
        if n_soft is not None and n_soft != n:
            raise ConfigError(f"n_soft={n_soft} but the hard prompt has {n} tokens; channel-wise coupling pairs "
                              "hard and soft tokens one to one, so they must be equal (omit n_soft)")
        CouplerConfig(n_ctx=n, couple=couple, activation=activation, dropout=dropout)  # checks the values
        for bad in ("ctx_init", "init", "class_specific"):
            if soft_options.get(bad):
                raise ConfigError(f"{bad} is not supported with a hard-soft coupler (the soft tokens start random)")
        self.n_ctx = n
        self.couple, self.activation, self.dropout = couple, activation, float(dropout)
        self.register_buffer("hard", hard_prompt.detach().float().clone(), persistent=True)
        self.soft = SoftPrompt(text_width, n, **soft_options)
        self.proj = nn.Linear(2 * text_width, text_width)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(self.dropout)

    def couple_tokens(self, soft: Tensor) -> Tensor:
        """(..., n, Dt) soft tokens -> (..., n, Dt) coupled tokens ``drop(act(proj([H ‖ S])))``."""
        hard = self.hard.expand(*soft.shape[:-2], *self.hard.shape)
        return self.drop(self.act(self.proj(torch.cat([hard, soft], dim=-1))))

    def forward(self) -> Prompts:
        p = self.soft()
        text_deep = p.text_deep
        if self.couple == "all" and text_deep is not None:
            text_deep = self.couple_tokens(text_deep)
        return Prompts(text=self.couple_tokens(p.text), text_deep=text_deep, visual=p.visual,
                       visual_deep=p.visual_deep, temporal=p.temporal)

    def options(self) -> CouplerConfig:
        soft = self.soft.options()
        return CouplerConfig(n_ctx=self.n_ctx, couple=self.couple, activation=self.activation, dropout=self.dropout,
                             depth=soft.depth, n_visual_ctx=soft.n_visual_ctx, visual_depth=soft.visual_depth,
                             init_std=soft.init_std, temporal_frames=soft.temporal_frames)

    @classmethod
    def build(cls, backend, hard: Tensor, config: CouplerConfig, n_soft: int | None = None) -> "HardSoftCoupler":
        """For a backend, with the hard prompt ``hard`` (n, Dt) and the deep prompt options of ``config``."""
        if config.n_visual_ctx:
            backend.check_visual_prompts()
        return cls(backend.text_width, hard, n_soft, couple=config.couple, activation=config.activation,
                   dropout=config.dropout, depth=config.depth, max_depth=backend.text_layers,
                   vision_width=backend.vision_width, n_visual_ctx=config.n_visual_ctx,
                   visual_depth=config.visual_depth, max_visual_depth=backend.vision_layers or None,
                   init_std=config.init_std, temporal_frames=config.temporal_frames)

    @classmethod
    def from_config(cls, backend, tokenizer, config: CouplerConfig, n_classes: int) -> "HardSoftCoupler":
        if config.n_ctx is None:
            raise ConfigError("a saved hard-soft prompt config needs n_ctx (the number of hard tokens)")
        # placeholder hard prompt: the saved one is loaded with the other tensors
        return cls.build(backend, torch.zeros(config.n_ctx, backend.text_width), config)
