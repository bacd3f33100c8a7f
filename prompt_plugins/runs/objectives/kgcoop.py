"""kgcoop: cross-entropy over the base classes + KgCoOp's knowledge-guided term (``KnowledgeGuidedLoss``) against
the frozen CLIP's features of the data set's hand-crafted CoOp template (computed once)."""
from __future__ import annotations

from torch import Tensor

from ...recipes import Recipe
from ...training import seeded
from .base import Objective, ObjectiveInputs, check_base_labels, register_objective


def kgcoop(inputs: ObjectiveInputs) -> Objective:
    from ...methods.kgcoop import KnowledgeGuidedLoss, method_configs
    from ...methods.kgcoop.templates import knows
    from ...registry import wrap

    model, task, recipe, seed = inputs.model, inputs.task, inputs.recipe, inputs.seed
    config = method_configs(recipe.method_options, where=f"recipe {recipe.name!r} method_options")
    adapter = seeded(seed, lambda: wrap(model, task.classnames, **recipe.wrap_options()))
    base = check_base_labels(task)
    term = KnowledgeGuidedLoss(config) if config.template else KnowledgeGuidedLoss(config, dataset=task.dataset)
    where = "given" if config.template else (f"CoOp's for {task.dataset}" if knows(task.dataset)
                                              else f"the default: CoOp has none for {task.dataset}")
    notes = [f"kgcoop: weight {config.weight:g}, frozen target {term.template!r} ({where})"]

    def loss(x: Tensor, y: Tensor, epoch: int) -> Tensor:
        return term.from_model(adapter, x, y, classes=base)

    return Objective(adapter, loss, adapter.trainable_parameters, {}, notes)


def check_recipe(recipe: Recipe) -> None:
    """The recipe's ``method_options`` against KgCoOp's typed config (before any work)."""
    from ...methods.kgcoop import method_configs

    method_configs(recipe.method_options, where=f"recipe {recipe.name!r} method_options")


register_objective("kgcoop", kgcoop, "kgcoop", check_recipe=check_recipe)
