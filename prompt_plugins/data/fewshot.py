"""CoOp's few-shot protocol, as Dassl draws it, and CoOp's base / new class halves.

``fewshot_items`` reproduces Dassl's ``DatasetBase.generate_fewshot_dataset`` draw for draw: Dassl's ``train.py``
seeds Python's ``random`` with the run's seed before the data set is built, and nothing else draws from it
first; the items are grouped by label in order of first appearance in the split; each label takes
``random.sample(items, K)`` (all items when it has fewer than K, no repeats). Here the draws come from a private
``random.Random(seed)``, so the same split list, K and seed give the same items as Dassl's
``split_fewshot/shot_K-seed_S.pkl`` (the val draw of min(K, 4) shots, which follows the train draw in the same
stream, is ``fewshot_val``). The base / new split is CoOp's ``subsample_classes``: the sorted labels of the
few-shot training set, base the first ceil(C/2), new the rest.
"""
from __future__ import annotations

import math
import random
from typing import Sequence

from ..config import check_int
from .splits import Item


def _by_label(items: Sequence[Item]) -> dict[int, list[Item]]:
    groups: dict[int, list[Item]] = {}
    for item in items:
        groups.setdefault(item.label, []).append(item)
    return groups


def _draw(rng: random.Random, items: Sequence[Item], shots: int) -> list[Item]:
    out: list[Item] = []
    for group in _by_label(items).values():
        out += rng.sample(group, shots) if len(group) >= shots else group
    return out


def fewshot_items(items: Sequence[Item], shots: int, seed: int) -> list[Item]:
    """``shots`` items per label drawn as Dassl does for ``seed`` (see the module docstring)."""
    check_int("shots", shots, 1)
    return _draw(random.Random(seed), items, shots)


def fewshot_val(train: Sequence[Item], val: Sequence[Item], shots: int, seed: int) -> list[Item]:
    """The few-shot val set of the same Dassl run: min(shots, 4) per label, drawn after the train draw."""
    rng = random.Random(seed)
    _draw(rng, train, shots)
    return _draw(rng, val, min(shots, 4))


def base_new_labels(labels: Sequence[int]) -> tuple[list[int], list[int]]:
    """CoOp's ``subsample_classes``: sorted distinct labels, base the first ceil(C/2), new the rest."""
    ordered = sorted(set(labels))
    m = math.ceil(len(ordered) / 2)
    return ordered[:m], ordered[m:]
