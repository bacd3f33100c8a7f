"""dpc: stage 2 on a stage-1 adapter (``DualPromptWrapper`` on ``from_pretrained``): the base classes get the tuned
prompt, new classes keep the stage-1 prompt P; DPC's hard-negative objective."""
from __future__ import annotations

import torch

from ...data import mix_seed
from ...errors import ConfigError
from .base import Objective, ObjectiveInputs, check_base_labels, register_objective


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
    return Objective(wrapper, lambda x, y, epoch: objective(x, y), wrapper.trainable_parameters, {"dpc": g}, notes)


register_objective("dpc", dpc, "dpc")
