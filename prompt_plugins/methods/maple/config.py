"""MaPLe's typed configs: the saved prompt section (``MaPLeConfig``) and ``wrap(method="maple")``'s options."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ...config import Config, check_choice, check_int
from ...errors import ConfigError
from ...prompts.ctx_init import CTX_INIT_RULES

#: the released prompt depth J (``train.py`` default and the base-to-new config)
MAPLE_DEPTH = 9
#: "shared": one Linear deep-copied into every deep coupler (released: all start identical); "independent": each
#: coupler its own PyTorch-default init
COUPLER_INITS = ("shared", "independent")


@dataclass
class MaPLeConfig(Config):
    """The ``"prompt"`` section of a MaPLe adapter: n_ctx tokens in both towers; ctx_init: the words whose
    embeddings initialised the context (already split by the ctx-init rule, None: random); depth J (prompts enter
    blocks 0 .. J-1 of both towers); coupler_init; init_std of the N(0, std²) context and deep text prompts."""

    n_ctx: int = 2
    ctx_init: str | None = None
    depth: int = MAPLE_DEPTH
    coupler_init: Literal["shared", "independent"] = "shared"
    init_std: float = 0.02

    def check(self) -> None:
        check_int("n_ctx", self.n_ctx, 1)
        check_int("depth", self.depth, 1)
        check_choice("coupler_init", self.coupler_init, COUPLER_INITS)
        if not math.isfinite(self.init_std) or self.init_std < 0:
            raise ConfigError(f"init_std={self.init_std} must be a finite number >= 0")
        if self.ctx_init is not None and not self.ctx_init.strip():
            raise ConfigError(f"ctx_init must be a non-empty string or None, got {self.ctx_init!r}")


@dataclass
class MaPLeOptions(Config):
    """``wrap(model, classnames, method="maple", ...)``; defaults are the released base-to-new setting.

    n_ctx: prompt tokens, the same in both towers (2); ctx_init: words for the context ("a photo of a"), read with
    ``ctx_init_rule`` ("released": the first n_ctx tokens are learned and the rest stay as fixed words in the
    template, "of a {}."; "whole": every token is learned, n_ctx must equal their count; see
    ``prompts/ctx_init.py``); depth: J, the same in both towers (None: the released 9, capped by the shallower
    tower); coupler_init: "shared" (released) or "independent"; init_std: 0.02.
    n_visual_ctx / visual_depth: accepted only equal to n_ctx / depth (MaPLe couples the towers; the recipes
    name them); use method="ivlp" for independent visual prompts."""

    n_ctx: int = 2
    ctx_init: str | None = "a photo of a"
    ctx_init_rule: str = "released"
    depth: int | None = None
    coupler_init: Literal["shared", "independent"] = "shared"
    init_std: float = 0.02
    n_visual_ctx: int | None = None
    visual_depth: int | None = None

    def check(self) -> None:
        check_choice("ctx_init_rule", self.ctx_init_rule, CTX_INIT_RULES)
        MaPLeConfig(n_ctx=self.n_ctx, depth=MAPLE_DEPTH if self.depth is None else self.depth,
                    coupler_init=self.coupler_init, init_std=self.init_std, ctx_init=self.ctx_init)
        for name, value, own in (("n_visual_ctx", self.n_visual_ctx, ("n_ctx", self.n_ctx)),
                                 ("visual_depth", self.visual_depth, ("depth", self.depth))):
            if value is not None and own[1] is not None and value != own[1]:
                raise ConfigError(
                    f"{name}={value} differs from {own[0]}={own[1]}: MaPLe derives its visual prompts from the text "
                    f"prompts, so both towers have the same {own[0]}. Drop {name}, or use method='ivlp' for "
                    "independent visual prompts")
            if value is not None and own[1] is None and name == "visual_depth":
                check_int(name, value, 1)
