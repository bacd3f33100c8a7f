"""KgCoOp's knowledge-guided term as a plain loss module (spec backbones.md §4.2):

    L_kg = W · (1 − mean_c cos(t̂_c, ŵ_c)) = W/2 · mean_c ‖t̂_c − ŵ_c‖²

t̂_c: the prompted text feature of class c; ŵ_c: the frozen CLIP's text feature of the data set's hand-crafted
prompt ("a photo of a {}, a type of pet." for OxfordPets), both L2-normalised; W = 8 as released. The full
KgCoOp objective is CE(s·f̂t̂ᵀ, y) + L_kg (``from_model``).
"""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError, ShapeError, check_finite
from ...text_targets import FrozenTextTargets
from .config import KgCoOpLossConfig
from .templates import hand_crafted_template


class KnowledgeGuidedLoss(nn.Module):
    """``loss(text_features, frozen_text_features)`` -> W·(1 − mean cos), or ``from_model(prompted, images, labels)``
    -> CE + that term on a ``PromptedCLIP``.

    weight: W (released 8.0). template: the frozen target's prompt; ``dataset``: pick CoOp's template of that data
    set instead (``hand_crafted_template``; "a photo of a {}." for one CoOp has none for). The frozen features are
    computed once per class list (``self.targets``)."""

    def __init__(self, config: KgCoOpLossConfig | None = None, *, dataset: str | None = None, **options: Any):
        super().__init__()
        if config is not None and options:
            raise ConfigError(f"pass a KgCoOpLossConfig or its fields as keywords, not both ({sorted(options)})")
        self.config = config if config is not None else KgCoOpLossConfig(**options)
        if self.config.template is not None and dataset is not None:
            raise ConfigError(f"template={self.config.template!r} and dataset={dataset!r} both choose the frozen "
                              "prompt: pass one")
        self.template = self.config.template or hand_crafted_template(dataset)
        self.targets = FrozenTextTargets([self.template])

    def forward(self, text_features: Tensor, frozen_text_features: Tensor) -> Tensor:
        """text_features (C, E) prompted (gradient flows), frozen_text_features (C, E) the frozen target (detached);
        both are L2-normalised here."""
        if text_features.dim() != 2 or text_features.shape != frozen_text_features.shape:
            raise ShapeError(f"text features {tuple(text_features.shape)} and frozen text features "
                             f"{tuple(frozen_text_features.shape)} must both be (C, E) for the same classes")
        check_finite("text_features", text_features)
        cos = (F.normalize(text_features, dim=-1) * F.normalize(frozen_text_features.detach(), dim=-1)).sum(-1)
        return self.config.weight * (1.0 - cos.mean())

    def from_model(self, prompted: Any, images: Tensor, labels: Tensor, classes: Any = None) -> Tensor:
        """CE over ``classes`` (default: all; ``labels`` index them) + the knowledge-guided term, with one text pass
        shared by both."""
        text = prompted.encode_text(classes)
        logits = prompted.logits(prompted.encode_image(images), text)
        return F.cross_entropy(logits, labels) + self(text, self.targets(prompted, classes))

    def extra_repr(self) -> str:
        return f"weight={self.config.weight:g}, template={self.template!r}"
