"""Base-to-new protocol helpers: the class split of CoOp/DPC, top-1 accuracy and the harmonic mean they report."""
from __future__ import annotations

import math
from typing import Sequence, TypeVar

from torch import Tensor

T = TypeVar("T")


def split_base_new(labels: Sequence[T]) -> tuple[list[T], list[T]]:
    """Base = the first ceil(C/2) sorted labels, new = the rest (each list is relabelled from 0 by position)."""
    ordered = sorted(labels)
    m = math.ceil(len(ordered) / 2)
    return ordered[:m], ordered[m:]


def harmonic_mean(base: float, new: float) -> float:
    """HM = 2 B N / (B + N). Average over datasets as HM(mean B, mean N), not mean of per-dataset HMs."""
    return 0.0 if base + new == 0 else 2 * base * new / (base + new)


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * (logits.argmax(-1).cpu() == targets.cpu()).float().mean().item()
