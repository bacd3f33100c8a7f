"""Symmetric InfoNCE (CLIP's contrastive loss) over paired rows, at a given logit scale."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError, ShapeError, check_finite


def symmetric_info_nce_from_logits(logits: Tensor) -> Tensor:
    """½ [CE(S, arange N) + CE(Sᵀ, arange N)] for an (N, N) similarity matrix S (already scaled)."""
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ShapeError(f"symmetric InfoNCE needs a square (N, N) matrix, got {tuple(logits.shape)}")
    check_finite("InfoNCE logits", logits)
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def symmetric_info_nce(image_feats: Tensor, text_feats: Tensor, scale: float | Tensor) -> Tensor:
    """Symmetric InfoNCE of paired rows: image_feats (N, E) and text_feats (N, E), both
    L2-normalised (not re-normalised here); S = scale * image_feats @ text_feats.T."""
    if image_feats.shape != text_feats.shape or image_feats.dim() != 2:
        raise ShapeError(f"image_feats {tuple(image_feats.shape)} and text_feats {tuple(text_feats.shape)} "
                         "must both be (N, E)")
    check_finite("image_feats", image_feats)
    check_finite("text_feats", text_feats)
    if isinstance(scale, Tensor):
        value = float(scale.detach()) if scale.numel() == 1 else math.nan
    else:
        value = float(scale) if isinstance(scale, (int, float)) and not isinstance(scale, bool) else math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"scale={scale!r} must be one finite number > 0 (CLIP's logit_scale.exp(), about 100)")
    return symmetric_info_nce_from_logits(scale * image_feats @ text_feats.t())
