"""DPC's dynamic hard-negative sampler, on backbone scores: the K most confusable wrong classes per anchor,
a non-repeat filter over the batch, and a fallback when too few survive.

Differences from the released code (both fixed here, ``legacy=True`` restores them):

* Off-by-one: the original takes the top-K classes *including* the ground truth and then drops it, so a
  sample gets K-1 candidates when the ground truth ranks in the top-K and K otherwise (a length check that
  should have capped this tests an empty list). Here the ground truth is masked first, so every sample gets
  the K hardest wrong classes as candidates.
* Fallback: when fewer than ``min_negatives`` (2) survive the non-repeat filter, the original makes C-2
  blind draws of ``randint(1, C-2)``: class 0 (and class C-1) can never be drawn and a sample can end with
  no negative at all although unused classes exist. Here the missing negatives are drawn without
  replacement from all unused classes (class 0 included), so a sample gets ``min(min_negatives, #unused)``.
"""
from __future__ import annotations

from typing import Container, Sequence

import torch
from torch import Tensor

from ...errors import ConfigError, ShapeError


def sample_negatives(scores: Tensor, labels: Tensor, *, candidates: Sequence[int], top_k: int, min_negatives: int,
                     generator: torch.Generator, legacy: bool = False,
                     has_images: Container[int] | None = None) -> list[list[int]]:
    """Negative classes per sample from (B, C) backbone logits or probabilities (only the order matters)
    and (B,) ground-truth labels, among ``candidates``; classes not in ``has_images`` (when given) cannot be
    negatives. The non-repeat filter runs over the whole batch."""
    if scores.dim() != 2 or labels.dim() != 1 or scores.shape[0] != labels.shape[0]:
        raise ShapeError(f"scores (B, C) and labels (B,) do not match: {tuple(scores.shape)}, {tuple(labels.shape)}")
    n_cols = scores.shape[1]
    cands = [c for c in candidates if c < n_cols]
    if top_k > len(cands) - 1:
        raise ConfigError(
            f"top_k={top_k} is larger than the {len(cands) - 1} wrong classes available among "
            f"{len(cands)} candidate classes; set top_k <= {max(1, len(cands) - 1)}")
    allowed = torch.zeros(n_cols, dtype=torch.bool)
    allowed[cands] = True
    if not legacy and has_images is not None:  # classes without training images cannot be negatives
        for c in cands:
            if c not in has_images:
                allowed[c] = False
    # log-probabilities over the allowed classes (same order as probabilities, no underflow ties)
    logp = scores.detach().float().cpu().masked_fill(~allowed, float("-inf")).log_softmax(-1)
    gts = [int(y) for y in labels.tolist()]
    used = set(gts)  # ground truths of the batch, then every accepted negative
    out = []
    for i, gt in enumerate(gts):
        row, valid = logp[i].clone(), allowed.clone()
        if legacy:
            top = [c for c in row.topk(min(top_k, int(valid.sum()))).indices.tolist() if c != gt]
        else:
            if 0 <= gt < n_cols:
                row[gt], valid[gt] = float("-inf"), False
            k = min(top_k, int(valid.sum()))
            top = row.topk(k).indices.tolist() if k else []
        kept = []
        for c in top:
            if c not in used:
                kept.append(c)
                used.add(c)
        if len(kept) < min_negatives:
            need = min_negatives - len(kept)
            kept += (_legacy_fallback(need, used, n_cols, generator) if legacy
                     else _fallback(need, used, allowed, generator))
        out.append(kept)
    return out


def _fallback(need: int, used: set[int], allowed: Tensor, generator: torch.Generator) -> list[int]:
    """``need`` classes drawn without replacement from the allowed classes not used yet."""
    pool = [c for c in range(len(allowed)) if bool(allowed[c]) and c not in used]
    extra = [pool[j] for j in torch.randperm(len(pool), generator=generator)[:need].tolist()] if pool else []
    used.update(extra)
    return extra


def _legacy_fallback(need: int, used: set[int], n_cols: int, generator: torch.Generator) -> list[int]:
    """C-2 draws of randint(1, C-2), as released (class 0 and C-1 are never drawn)."""
    extra: list[int] = []
    if n_cols - 2 < 1:
        return extra
    for _ in range(n_cols - 2):
        r = int(torch.randint(1, n_cols - 1, (1,), generator=generator))
        if r not in used:
            extra.append(r)
            used.add(r)
            if len(extra) >= need:
                break
    return extra
