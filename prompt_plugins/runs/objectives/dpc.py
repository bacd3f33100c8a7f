"""dpc: stage 2 on a stage-1 adapter (``DualPromptWrapper`` on ``from_pretrained``): the base classes get the tuned
prompt, new classes keep the stage-1 prompt P; DPC's hard-negative objective."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ...data import mix_seed
from ...errors import ConfigError
from .base import OBJECTIVES, Objective, ObjectiveInputs, check_base_labels, method_recipe, register_objective


def dpc(inputs: ObjectiveInputs) -> Objective:
    """DPC stage 2 on the stage-1 adapter ``stage1`` with the hard-negative objective."""
    from ...methods.dpc import DualPromptWrapper, HardNegativeOptimizer
    from ...model import PromptedCLIP
    from ...registry import from_pretrained

    model, task, recipe, seed = inputs.model, inputs.task, inputs.recipe, inputs.seed
    stage1, train_set = inputs.stage1, inputs.train_set
    check_base_labels(task)
    if len(task.base) < 2:
        raise ConfigError(f"DPC's hard negatives need at least 2 base classes; {task.dataset} has {len(task.base)}")
    prompted = from_pretrained(model, stage1, classnames=task.classnames)
    if not isinstance(prompted, PromptedCLIP):
        raise ConfigError(f"--from {str(stage1)!r} is a {type(prompted).__name__} adapter; DPC's stage 2 starts from "
                          "a prompt adapter written by train (coop, ivlp, maple, ga2, promptsrc, kgcoop, promptkd), "
                          "not a DPC one")
    wrapper = DualPromptWrapper(prompted, task.base_names, **recipe.dpc_options()["wrapper"])
    top_k = min(recipe.top_k, len(task.base) - 1)
    g = torch.Generator().manual_seed(mix_seed(seed, 0xD9C))
    objective = HardNegativeOptimizer(wrapper, train_set, top_k=top_k, generator=g)
    notes = [] if top_k == recipe.top_k else [f"dpc: top_k {recipe.top_k} -> {top_k} (the wrong base classes there are)"]
    stage2 = stage2_options(recipe)
    if not stage2.backbone_loss:
        return Objective(wrapper, lambda x, y, epoch: objective(x, y), wrapper.trainable_parameters, {"dpc": g}, notes)
    backbone = backbone_term(wrapper, prompted.method, stage1, task)
    w = stage2.backbone_loss_weight
    notes.append(f"dpc: the {prompted.method} backbone's own loss (weight {w:g}) runs on the parallel prompt beside "
                 "the hard-negative objective (backbone_loss=true; the released stage 2 has none)")
    return Objective(wrapper, lambda x, y, epoch: objective(x, y) + w * backbone(x, y, epoch),
                     wrapper.trainable_parameters, {"dpc": g}, notes)


def stage2_options(recipe: Any) -> Any:
    """The recipe's stage-2 options (``DPCStage2Options``); its other ``method_options`` are ``wrap`` options."""
    from ...methods.dpc import DPCStage2Options

    fields = set(DPCStage2Options.field_names())
    unknown = sorted(set(recipe.method_options) - fields - set(recipe.wrap_options()))
    if unknown:
        raise ConfigError(f"recipe {recipe.name}: method_options {unknown} are neither DPC's stage-2 options "
                          f"{sorted(fields)} nor options of its wrap")
    return DPCStage2Options(**{k: v for k, v in recipe.method_options.items() if k in fields})


def backbone_term(wrapper: Any, method: str, stage1: Path, task: Any) -> Callable[[Tensor, Tensor, int], Tensor]:
    """The stage-1 method's training loss on the wrapper's base route, with the stage-1 run's recipe (its run
    record's, else the method's default)."""
    from ...checkpoint import read_adapter
    from ...recipes import Recipe

    spec = OBJECTIVES.get(method)
    if spec is None or spec.term is None:
        raise ConfigError(f"--from {str(stage1)!r} is a {method} run, whose loss cannot run in stage 2 "
                          f"(backbone_loss=true): {'the KD term needs the teacher model, which stage 2 does not load; ' if method == 'promptkd' else ''}"
                          "train stage 2 without it (the released setting), or add the term in your own loop on "
                          "wrapper.route_view('base')")
    config, _ = read_adapter(stage1)
    record = (config.run or {}).get("recipe")
    recipe = Recipe.from_dict(record, where=f"{stage1} run recipe") if record else method_recipe(method, None)
    return spec.term(wrapper.route_view("base"), task, recipe)


def check_recipe(recipe: Any) -> None:
    """A DPC recipe's ``method_options``: stage-2 options or ``wrap`` options of the backbone (before any work)."""
    stage2_options(recipe)


register_objective("dpc", dpc, "dpc", check_recipe=check_recipe)
