"""coop / ivlp / maple / ga2: cross-entropy over the base classes; ga2 also the hard prompt (a file, or an adapter folder
whose ``prompt.ctx`` is used) and the attribute-anchor KL (``AttributeAnchorLoss``, ``anchor_kl``) on
``anchor_clips_per_step`` unlabelled anchor clips per step when anchors are given."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...data import ItemDataset, Task, mix_seed
from ...errors import ConfigError
from ...training import seeded
from .base import Objective, ObjectiveInputs, check_base_labels, register_objective


def hard_prompt_file(path: str) -> str:
    """A hard-prompt file: ``path`` itself, or an adapter folder's weights (its ``prompt.ctx``)."""
    p = Path(path)
    if p.is_dir():
        from ...checkpoint import WEIGHTS_NAME

        if not (p / WEIGHTS_NAME).is_file():
            raise ConfigError(f"--hard-prompt {path!r} is a folder without {WEIGHTS_NAME}; pass a checkpoint file "
                              "or an adapter folder written by train")
        return str(p / WEIGHTS_NAME)
    return str(p)


def cross_entropy(inputs: ObjectiveInputs) -> Objective:
    """coop / ivlp / maple / ga2: cross-entropy over the base classes (+ GA2's anchor term)."""
    from ...registry import wrap

    model, task, recipe, seed, anchors = inputs.model, inputs.task, inputs.recipe, inputs.seed, inputs.anchors
    hard_prompt, anchor_weight = inputs.plan.hard_prompt, inputs.plan.anchor_weight
    anchor_weight = 1.0 if anchor_weight is None else anchor_weight  # the plan's None: the default weight

    options = recipe.wrap_options()
    if recipe.method == "ga2":
        options["hard_prompt"] = hard_prompt_file(hard_prompt) if hard_prompt else None
    adapter = seeded(seed, lambda: wrap(model, task.classnames, **options))
    base = check_base_labels(task)
    notes: list[str] = []
    anchor_term = None
    generators: dict[str, torch.Generator] = {}
    if recipe.method == "ga2" and anchors is not None and recipe.anchor_clips_per_step:
        anchor_term = _anchor_term(adapter, anchors, recipe.anchor_clips_per_step, anchor_weight, task, seed,
                                   generators)
    elif recipe.method == "ga2":
        notes.append("ga2: no --anchors given: training without the attribute-anchor term")

    ce = ce_term(adapter, task, recipe)

    def loss(x: Tensor, y: Tensor, epoch: int) -> Tensor:
        value = ce(x, y, epoch)
        return value if anchor_term is None else value + anchor_term(epoch, x.device)

    return Objective(adapter, loss, adapter.trainable_parameters, generators, notes)


def ce_term(model: Any, task: Task, recipe: Any) -> Callable[[Tensor, Tensor, int], Tensor]:
    """Cross-entropy of ``model(x, base classes)`` (GA2's anchor term is not part of it: it needs the anchors)."""
    base = check_base_labels(task)
    return lambda x, y, epoch: F.cross_entropy(model(x, base), y)


def _anchor_term(adapter: nn.Module, anchors: ItemDataset, per_step: int, weight: float, task: Task, seed: int,
                 generators: dict[str, torch.Generator]) -> Callable[[int, torch.device], Tensor]:
    from ...methods.ga2 import AttributeAnchorLoss

    template = "a video of a person {}." if task.kind == "video" else "a photo of a {}."
    term = AttributeAnchorLoss(weight=weight, frozen_template=template)
    g = torch.Generator().manual_seed(mix_seed(seed, 0xA2C4))
    generators["anchors"] = g

    def value(epoch: int, device: torch.device) -> Tensor:
        anchors.set_epoch(epoch)
        picks = torch.randint(len(anchors), (per_step,), generator=g).tolist()
        clips = torch.stack([anchors[i][0] for i in picks]).to(device)
        return term.from_model(adapter, clips)

    return value


register_objective("coop", cross_entropy, "coop", term=ce_term)
register_objective("ivlp", cross_entropy, "ivlp_vifi", term=ce_term)
register_objective("ga2", cross_entropy, "ga2", term=ce_term)
register_objective("maple", cross_entropy, "maple", term=ce_term)
