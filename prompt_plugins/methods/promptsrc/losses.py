"""PromptSRC's self-regulating constraints as plain loss modules over features and logits (spec backbones.md §3.3):

    L = CE(s·f̂t̂ᵀ, y) + text_weight·mean|t̂ − ŵ| + image_weight·mean|f̂ − ĝ| + kl_weight·KL(p_ĝŵ ‖ p_f̂t̂)

f̂ / t̂: the prompted image (B, E) / text (C, E) features; ĝ: the frozen CLIP's image features of the **same**
(augmented) images; ŵ: the frozen text target, the normalised mean over the 60 ImageNet templates of the frozen
CLIP's unnormalised text features (``text_targets.frozen_text_features``); s: the CLIP's logit scale. Every
feature is L2-normalised here (a no-op, value and gradient, for features that already are).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError, ShapeError, check_finite
from ...precision import at_least_fp32
from ...text_targets import FrozenTextTargets
from .config import KL_REDUCTIONS, SelfRegulationConfig
from .templates import IMAGENET_TEMPLATES


def feature_l1(features: Tensor, frozen: Tensor) -> Tensor:
    """mean |n(features) − n(frozen)| over every element (the release's ``F.l1_loss(..., reduction='mean')``)."""
    if features.shape != frozen.shape:
        raise ShapeError(f"features {tuple(features.shape)} and frozen features {tuple(frozen.shape)} must have the "
                         "same shape (the same classes / images, in the same order)")
    return (F.normalize(features, dim=-1) - F.normalize(frozen.detach(), dim=-1)).abs().mean()


def logit_kl(logits: Tensor, frozen_logits: Tensor, reduction: str = "released", temperature: float = 1.0) -> Tensor:
    """KL(softmax(frozen/T) ‖ softmax(logits/T)) · T², summed over the batch and divided by B·C (``"released"``)
    or by B (``"batchmean"``). The frozen side carries no gradient."""
    if reduction not in KL_REDUCTIONS:
        raise ConfigError(f"reduction={reduction!r} is unknown: use one of {list(KL_REDUCTIONS)}")
    if logits.dim() != 2 or logits.shape != frozen_logits.shape:
        raise ShapeError(f"logits {tuple(logits.shape)} and frozen logits {tuple(frozen_logits.shape)} must both be "
                         "(B, C) over the same classes")
    target = F.log_softmax(frozen_logits.detach() / temperature, dim=1)
    kl = F.kl_div(F.log_softmax(logits / temperature, dim=1), target, reduction="sum", log_target=True) * temperature ** 2
    return kl / (logits.numel() if reduction == "released" else logits.shape[0])


class PromptSRCLoss(nn.Module):
    """PromptSRC's loss for any trainer: ``forward`` over features/logits, or ``from_model`` on a ``PromptedCLIP``.

    Options (``SelfRegulationConfig``): text_weight 25, image_weight 10, kl_weight 1, kl_reduction "released"
    (Σ/(B·C)) or "batchmean". ``templates``: the ensemble of the frozen text target (default: the 60 ImageNet
    templates of the release); its features are computed once per class list (``self.targets``)."""

    def __init__(self, config: SelfRegulationConfig | None = None, *, templates: Sequence[str] = IMAGENET_TEMPLATES,
                 **options: Any):
        super().__init__()
        if config is not None and options:
            raise ConfigError(f"pass a SelfRegulationConfig or its fields as keywords, not both ({sorted(options)})")
        self.config = config if config is not None else SelfRegulationConfig(**options)
        self.targets = FrozenTextTargets(templates)

    def terms(self, logits: Tensor, labels: Tensor | None, *, text_features: Tensor, frozen_text_features: Tensor,
              image_features: Tensor, frozen_image_features: Tensor, scale: float | Tensor = 100.0,
              frozen_logits: Tensor | None = None) -> dict[str, Tensor]:
        """The weighted terms: {"ce" (only with ``labels``), "text", "image", "kl"}. logits (B, C) of the prompted
        model; text_features / frozen_text_features (C, E); image_features / frozen_image_features (B, E);
        frozen_logits (B, C) default ``scale · ĝŵᵀ`` (the release's zero-shot logits)."""
        for name, t in (("logits", logits), ("text_features", text_features), ("image_features", image_features)):
            check_finite(name, t)
        if logits.dim() != 2 or text_features.shape[0] != logits.shape[1] or image_features.shape[0] != logits.shape[0]:
            raise ShapeError(f"logits {tuple(logits.shape)} must be (B, C) for image features "
                             f"{tuple(image_features.shape)} (B, E) and text features "
                             f"{tuple(text_features.shape)} (C, E)")
        c = self.config
        if frozen_logits is None:
            frozen_logits = scale * F.normalize(frozen_image_features.detach(), dim=-1) \
                @ F.normalize(frozen_text_features.detach(), dim=-1).t()
        out = {"text": c.text_weight * feature_l1(text_features, frozen_text_features),
               "image": c.image_weight * feature_l1(image_features, frozen_image_features),
               "kl": c.kl_weight * logit_kl(logits, frozen_logits, c.kl_reduction)}
        if labels is not None:
            out = {"ce": F.cross_entropy(logits, labels), **out}
        return out

    def forward(self, logits: Tensor, labels: Tensor | None = None, **features: Any) -> Tensor:
        """The sum of ``terms`` (CE included when ``labels`` is given; without it, the regularisers alone)."""
        return sum(self.terms(logits, labels, **features).values())

    def from_model(self, prompted: Any, images: Tensor, labels: Tensor | None = None, classes: Any = None
                   ) -> Tensor:
        """The loss of one batch on ``prompted`` (a ``PromptedCLIP``) over ``classes`` (default: all; ``labels``
        index them): one prompted pass per tower, one frozen image pass without autograd (reused by the L1 and
        the KL term) and the frozen text target from the per-class-list cache."""
        text = prompted.encode_text(classes)
        image = prompted.encode_image(images)
        with torch.no_grad(), prompted.disabled():
            frozen_image = prompted.encode_image(images)
        scale = at_least_fp32(prompted.backend.logit_scale.exp()).detach()
        return self(prompted.logits(image, text), labels, text_features=text,
                    frozen_text_features=self.targets(prompted, classes), image_features=image,
                    frozen_image_features=frozen_image, scale=scale)

    def extra_repr(self) -> str:
        c = self.config
        return (f"text_weight={c.text_weight:g}, image_weight={c.image_weight:g}, kl_weight={c.kl_weight:g}, "
                f"kl_reduction={c.kl_reduction!r}, templates={len(self.targets.templates)}")
