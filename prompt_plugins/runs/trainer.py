"""The epoch loop of ``train``: streaming batches, the recipe's optimiser and per-step schedule, a training
state after every epoch and ``--resume`` from it (a resumed run ends with the same tensors as an uninterrupted
one: the batch order and augmentations are drawn from (seed, epoch), and the optimiser, scheduler and random
generators are restored)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import EpochBatches, ItemDataset, make_loader, mix_seed
from ..recipes import Recipe
from .objectives import Objective
from .progress import Progress
from .state import load_state, rng_state, save_state, set_rng_state


@dataclass
class FitResult:
    """epochs_done: epochs finished (== recipe.epochs unless stopped); loss: the last step's; seconds and
    items_per_s of the epochs run by this process; finished: every epoch is done."""

    epochs_done: int
    loss: float
    seconds: float
    items_per_s: float
    finished: bool


class Stopped(Exception):
    """Raised after ``stop_after`` epochs (tests: a run killed after a checkpoint)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during ``train``: the message says where the seed stopped and the command that continues it (the
    training state of its last finished epoch is on disk, written atomically)."""


def fit(objective: Objective, dataset: ItemDataset, recipe: Recipe, *, seed: int, device: torch.device,
        workers: int, state_path: Path, plan: dict[str, Any], resume: bool, progress: Progress,
        stop_after: int | None = None) -> FitResult:
    """Train ``objective`` on ``dataset`` for ``recipe.epochs`` epochs, saving ``state_path`` after each."""
    n = len(dataset)
    batch = min(recipe.batch_size, n)
    steps = n // batch
    start, loss = 0, float("nan")
    state = load_state(state_path, plan) if resume and state_path.is_file() else None
    if state is not None:
        objective.adapter.load_adapter_state_dict(state["adapter"])
        for name, obj in objective.stateful.items():
            obj.load_state_dict(state.get("objective", {})[name])
        start, loss = int(state["epoch"]), float(state["loss"])
    optimizer = recipe.build_optimizer(objective.params())
    scheduler = recipe.build_scheduler(optimizer, steps)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], device, objective.generators)
        progress.note(f"resumed from {state_path} after epoch {start}/{recipe.epochs}")
    else:
        torch.manual_seed(mix_seed(seed, 0x7A1))  # dropout (GA2's coupler) draws from the global generator
    seconds, items, lr = 0.0, 0, float("nan")
    objective.adapter.train()
    for epoch in range(start, recipe.epochs):
        progress.start_epoch(epoch)
        batches = EpochBatches(n, batch, seed=seed, epoch=epoch)
        for x, y in make_loader(dataset, batches, workers=workers, device=device):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            value = objective.loss(x, y, epoch)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            lr = optimizer.param_groups[0]["lr"]  # the lr this step used
            scheduler.step()
            loss = float(value.detach())
            progress.step(loss)
        if objective.end_epoch is not None:
            objective.end_epoch(epoch)
        seconds += progress.end_epoch(epoch, loss, lr)
        items += steps * batch
        save_state(state_path, epoch=epoch + 1, plan=plan, adapter=objective.adapter.adapter_state_dict(),
                   optimizer=optimizer, scheduler=scheduler, rng=rng_state(device, objective.generators), loss=loss,
                   objective={name: obj.state_dict() for name, obj in objective.stateful.items()})
        if stop_after is not None and epoch + 1 >= stop_after and epoch + 1 < recipe.epochs:
            raise Stopped(f"stopped after epoch {epoch + 1} (--stop-after)")
    objective.adapter.eval()
    return FitResult(recipe.epochs, loss, seconds, items / seconds if seconds else 0.0, True)
