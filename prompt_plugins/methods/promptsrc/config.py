"""PromptSRC's typed options: the prompt (IVLP deep prompts with the released shape as defaults), the
self-regulating losses and the Gaussian prompt aggregation. ``Recipe.method_options`` of a ``promptsrc`` recipe
holds fields of ``SelfRegulationConfig`` and ``GPAConfig`` (``method_configs`` checks and splits them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from ...config import Config, check_number, split_options
from ..ivlp.model import IVLPOptions

KL_REDUCTIONS = ("released", "batchmean")


@dataclass
class PromptSRCPromptConfig(IVLPOptions):
    """The prompt of ``wrap(method="promptsrc")``: IVLP's options with PromptSRC's released shape as the defaults
    (4 text + 4 visual tokens, depth 9 in both towers capped by the model, text context initialised from "a photo of
    a" by the released rule, which learns all four tokens;
    ``muzairkhattak/PromptSRC@bb95c77:configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml``)."""

    n_ctx: int | None = 4
    n_visual_ctx: int = 4


@dataclass
class SelfRegulationConfig(Config):
    """PromptSRC's self-regulating terms beside the cross-entropy (spec backbones.md §3.3):

    text_weight:   weight of mean |t̂ - ŵ| (prompted vs frozen text features; released TEXT_LOSS_WEIGHT 25)
    image_weight:  weight of mean |f̂ - ĝ| (prompted vs frozen image features; released IMAGE_LOSS_WEIGHT 10)
    kl_weight:     weight of KL(p_frozen ‖ p) at temperature 1 (released: 1, not configurable there)
    kl_reduction:  "released": Σ KL / (B·C), the release's ``reduction='sum' / logits.numel()`` (the term shrinks
                   with the class count); "batchmean": Σ KL / B
    """

    text_weight: float = 25.0
    image_weight: float = 10.0
    kl_weight: float = 1.0
    kl_reduction: Literal["released", "batchmean"] = "released"

    def check(self) -> None:
        for name in ("text_weight", "image_weight", "kl_weight"):
            check_number(name, getattr(self, name), low=0.0)


@dataclass
class GPAConfig(Config):
    """Gaussian prompt aggregation (spec §3.4): epoch e of N gets the weight N(e; gpa_mean, gpa_std²), normalised
    over e = 1..N; ``gpa=False`` keeps the last epoch's prompts. Released: mean 15, std 1 over 20 epochs."""

    gpa: bool = True
    gpa_mean: float = 15.0
    gpa_std: float = 1.0

    def check(self) -> None:
        check_number("gpa_mean", self.gpa_mean)
        check_number("gpa_std", self.gpa_std, low=0.0, low_open=True)


def method_configs(options: Mapping[str, Any], where: str = "recipe method_options"
                   ) -> tuple[SelfRegulationConfig, GPAConfig]:
    """``Recipe.method_options`` of a PromptSRC recipe as its typed configs (unknown keys are a ``ConfigError``)."""
    losses, gpa = split_options(where, "promptsrc", dict(options), (SelfRegulationConfig, GPAConfig))
    return SelfRegulationConfig(**losses), GPAConfig(**gpa)
