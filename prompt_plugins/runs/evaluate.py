"""Base / new / HM on a task's test split, as the papers report it: base test items classified among the base
classes only, new test items among the new classes only (CoOp's ``SUBSAMPLE_CLASSES``), top-1 accuracy in
percent, HM = 2BN / (B + N). Text features are computed once per half; images stream through the test transform."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from ..base_new import harmonic_mean
from ..data import EpochBatches, Task, dataset_for, make_loader
from ..training import eval_mode


def _features(adapter: nn.Module, x: Tensor, route: str | None) -> Tensor:
    return adapter.encode_image(x) if route is None else adapter.encode_image(x, route=route)


@torch.no_grad()
def evaluate_half(adapter: nn.Module, task: Task, half: str, *, size: int, frames: int | None, device: torch.device,
                  batch: int, workers: int, zero_shot: bool = False) -> dict[str, Any]:
    """{"accuracy", "classes", "items", "per_class": {name: accuracy}} of the ``half`` ("base" or "new")."""
    classes = task.base if half == "base" else task.new
    items = task.test_base if half == "base" else task.test_new
    local = {c: i for i, c in enumerate(classes)}
    dataset = dataset_for(task, items, size, frames, train=False, seed=0, label_map=local)
    route = half if hasattr(adapter, "base_mask") and not zero_shot else None  # DPC: base / new prompts
    correct = torch.zeros(len(classes), dtype=torch.long)
    total = torch.zeros(len(classes), dtype=torch.long)
    with eval_mode(adapter), (adapter.disabled() if zero_shot else nullcontext()):
        text = adapter.encode_text(torch.tensor(classes))
        for x, y in make_loader(dataset, EpochBatches(len(dataset), batch, shuffle=False, drop_last=False),
                                workers=workers, device=device):
            pred = (_features(adapter, x.to(device), route) @ text.t()).argmax(-1).cpu()
            total += torch.bincount(y, minlength=len(classes))
            correct += torch.bincount(y[pred == y], minlength=len(classes))
    per_class = {task.classnames[c]: (100.0 * int(correct[i]) / int(total[i]) if total[i] else float("nan"))
                 for i, c in enumerate(classes)}
    return {"accuracy": 100.0 * int(correct.sum()) / max(1, int(total.sum())), "classes": len(classes),
            "items": int(total.sum()), "per_class": per_class}


def evaluate(adapter: nn.Module, task: Task, *, size: int, frames: int | None, device: torch.device, batch: int = 100,
             workers: int = 0, zero_shot: bool = False) -> dict[str, Any]:
    """{"base": {...}, "new": {...}, "hm"} (see ``evaluate_half``)."""
    halves = {h: evaluate_half(adapter, task, h, size=size, frames=frames, device=device, batch=batch,
                               workers=workers, zero_shot=zero_shot) for h in ("base", "new")}
    return {**halves, "hm": harmonic_mean(halves["base"]["accuracy"], halves["new"]["accuracy"])}
