"""``wrap(model, classnames, method="ga2", hard_prompt=...)``: GA2-CLIP = IVLP deep prompts + hard-soft coupler.

Defaults follow the released setting, capped by the model: text and visual depth 9, as many visual prompt
tokens as hard tokens (16 in GA2), dropout 0.5, coupling at layer 0 only. Saved GA2 adapters load through
CoOp's ``load_prompted`` (the prompt type in the config rebuilds the coupler).
"""
from __future__ import annotations

from typing import Sequence

from ...model import PromptedCLIP, PromptedOptions
from ...registry import Target
from ...tokenization import check_classnames
from ..coop.model import prompted_clip
from .config import GA2Options
from .coupler import HardSoftCoupler
from .hard_prompt import load_hard_prompt


def build_ga2(target: Target, classnames: Sequence[str], options: PromptedOptions, ga2: GA2Options) -> PromptedCLIP:
    """GA2-CLIP prompts on the target's model (see ``GA2Options``)."""
    hard = load_hard_prompt(ga2.hard_prompt, ga2.hard_prompt_key, allow_unsafe=ga2.allow_unsafe)
    coupler = HardSoftCoupler.build(target.backend, hard, ga2.coupler(target.backend, hard.shape[0]), ga2.n_soft)
    return prompted_clip(target, check_classnames(classnames), coupler, "ga2", options)
