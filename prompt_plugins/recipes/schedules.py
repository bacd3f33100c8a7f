"""The learning-rate schedules of the released code bases, as pure functions of the epoch.

Each function gives the lr at ``t`` epochs (fractional) for peak ``lr``, ``epochs`` in all, ``warmup``
warm-up epochs of ``warmup_type`` starting at ``warmup_lr``, and a cosine that ends at ``min_lr``:

``dassl_cosine`` (CoOp, DPC: Dassl's ``ConstantWarmupScheduler``/``LinearWarmupScheduler`` + ``CosineAnnealingLR``)
    The lr changes once per epoch: e = floor(t). e < W: ``warmup_lr`` (constant; linear: ``warmup_lr`` at
    e = 0, then lr·e/W). Else min_lr + ½(lr − min_lr)(1 + cos(π(e − W)/E)): the cosine is built with
    T_max = E (all epochs, warm-up included), so it never reaches ``min_lr`` within the run.
``ga2_cosine`` (GA2-CLIP's ``WarmupCosineAnnealingLR``)
    t < W: warmup_lr + (lr − warmup_lr)·t/W (constant: ``warmup_lr``); else the cosine over the
    post-warm-up span, progress (t − W)/(E − W), reaching ``min_lr`` at t = E.
``timm_cosine`` (ViFi-CLIP: timm ``CosineLRScheduler``, ``warmup_prefix=False``)
    The same warm-up, then the cosine at the absolute progress t/E, so the lr jumps down when the
    warm-up ends (0.985·lr -> 0.575·lr for 11 epochs, 5 of warm-up, 13 steps per epoch).
"""
from __future__ import annotations

import math
from typing import Callable

from ..config import check_int


def _cosine(lr: float, min_lr: float, progress: float) -> float:
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def _warmup(t: float, lr: float, warmup: int, warmup_type: str, warmup_lr: float) -> float:
    if warmup_type == "constant":
        return warmup_lr
    return warmup_lr + (lr - warmup_lr) * t / warmup


def dassl_cosine(t: float, lr: float, epochs: int, warmup: int, warmup_type: str, warmup_lr: float,
                 min_lr: float) -> float:
    e = math.floor(t)
    if e < warmup:
        return lr * e / warmup if warmup_type == "linear" and e > 0 else warmup_lr
    return _cosine(lr, min_lr, (e - warmup) / epochs)


def ga2_cosine(t: float, lr: float, epochs: int, warmup: int, warmup_type: str, warmup_lr: float,
               min_lr: float) -> float:
    if t < warmup:
        return _warmup(t, lr, warmup, warmup_type, warmup_lr)
    return _cosine(lr, min_lr, (t - warmup) / (epochs - warmup))


def timm_cosine(t: float, lr: float, epochs: int, warmup: int, warmup_type: str, warmup_lr: float,
                min_lr: float) -> float:
    if t < warmup:
        return _warmup(t, lr, warmup, warmup_type, warmup_lr)
    return _cosine(lr, min_lr, t / epochs)


SCHEDULES: dict[str, Callable[..., float]] = {
    "dassl_cosine": dassl_cosine, "ga2_cosine": ga2_cosine, "timm_cosine": timm_cosine,
}


def update_epoch(step: int, steps_per_epoch: int, every: int = 1) -> float:
    """The epoch at which the lr used by optimisation ``step`` (0-based) was set.

    every = 1: step / steps_per_epoch. every = N > 1 follows GA2-CLIP, which sets the lr at iteration 0 of
    each epoch and after every N-th iteration (i + 1 ≡ 0 mod N), at ``epoch + i / steps_per_epoch``; the
    iterations in between keep it (so iterations 0 .. N-2 of the first epoch run at the warm-up's start)."""
    check_int("steps_per_epoch", steps_per_epoch, 1)
    check_int("step", step, 0)
    epoch, i = divmod(step, steps_per_epoch)
    j = 0 if i < every - 1 else i - (i + 1) % every
    return epoch + j / steps_per_epoch
