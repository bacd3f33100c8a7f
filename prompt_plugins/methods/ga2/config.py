"""GA2-CLIP's typed configs: the coupler's saved config and ``wrap(method="ga2")``'s options."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ...config import check_choice, check_int
from ...errors import ConfigError
from ...prompts import DeepPromptConfig

ACTIVATIONS = ("relu", "gelu", "identity", "tanh")
#: the released GA2-CLIP prompt depth (both towers)
GA2_DEPTH = 9


@dataclass
class CouplerConfig(DeepPromptConfig):
    """``HardSoftCoupler``: n_ctx hard (= soft) tokens; couple "first" (layer-0 context only, as released) or
    "all" (every deep text layer too); activation "relu" (released), "gelu", "tanh" or "identity"; dropout
    0.5 (released); plus the deep IVLP prompt options of ``DeepPromptConfig``."""

    n_ctx: int | None = None
    couple: Literal["first", "all"] = "first"
    activation: str = "relu"
    dropout: float = 0.5

    def check(self) -> None:
        super().check()
        if self.n_ctx is not None:
            check_int("n_ctx", self.n_ctx, 1)
        check_choice("activation", self.activation, ACTIVATIONS)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1)")


@dataclass
class GA2Options(CouplerConfig):
    """``wrap(model, classnames, method="ga2", hard_prompt=..., ...)``.

    hard_prompt (required): an (n, Dt) tensor, a ``.safetensors`` file, or a GA2/IVLP/ViFi checkpoint whose
    layer-0 context becomes the frozen hard prompt; hard_prompt_key: its tensor in a file holding several;
    allow_unsafe: load a checkpoint that needs code (only a trusted one); n_soft: must equal the hard tokens.
    depth (default 9, capped by the model) and n_visual_ctx (default: as many as hard tokens) follow GA2."""

    hard_prompt: Any = None
    hard_prompt_key: str | None = None
    allow_unsafe: bool = False
    n_soft: int | None = None
    depth: int | None = None  # type: ignore[assignment]
    n_visual_ctx: int | None = None  # type: ignore[assignment]

    def check(self) -> None:
        if self.hard_prompt is None:
            raise ConfigError("method='ga2' needs hard_prompt=...: a frozen (n, width) tensor, a .safetensors file, "
                              "or the checkpoint of a prompt run on other data (its layer-0 context is used)")
        if self.n_soft is not None:
            check_int("n_soft", self.n_soft, 1)
        super().check()

    def coupler(self, backend: Any, n_hard: int) -> CouplerConfig:
        """The coupler's config, GA2's defaults resolved for ``backend`` and a hard prompt of ``n_hard`` tokens."""
        depth = min(GA2_DEPTH, backend.text_layers) if self.depth is None else self.depth
        n_visual, visual_depth = self.n_visual_ctx, self.visual_depth
        if n_visual is None:
            n_visual = n_hard if backend.vision_width else 0
            if n_visual and visual_depth is None:
                visual_depth = min(GA2_DEPTH, backend.vision_layers)
        return CouplerConfig(n_ctx=n_hard, couple=self.couple, activation=self.activation, dropout=self.dropout,
                             depth=depth, n_visual_ctx=n_visual, visual_depth=visual_depth, init_std=self.init_std,
                             temporal_frames=self.temporal_frames)
