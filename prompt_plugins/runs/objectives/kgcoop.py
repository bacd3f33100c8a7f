"""kgcoop: cross-entropy over the base classes + KgCoOp's knowledge-guided term (``KnowledgeGuidedLoss``) against
the frozen CLIP's features of the data set's hand-crafted CoOp template (computed once)."""
from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

from ...recipes import Recipe
from ...training import seeded
from .base import Objective, ObjectiveInputs, check_base_labels, register_objective


def kgcoop(inputs: ObjectiveInputs) -> Objective:
    from ...methods.kgcoop import method_configs
    from ...methods.kgcoop.templates import knows
    from ...registry import wrap

    model, task, recipe, seed = inputs.model, inputs.task, inputs.recipe, inputs.seed
    config = method_configs(recipe.method_options, where=f"recipe {recipe.name!r} method_options")
    adapter = seeded(seed, lambda: wrap(model, task.classnames, **recipe.wrap_options()))
    term = knowledge_guided(task, recipe)
    where = "given" if config.template else (f"CoOp's for {task.dataset}" if knows(task.dataset)
                                              else f"the default: CoOp has none for {task.dataset}")
    notes = [f"kgcoop: weight {config.weight:g}, frozen target {term.template!r} ({where})"]
    return Objective(adapter, kgcoop_term(adapter, task, recipe, term), adapter.trainable_parameters, {}, notes)


def knowledge_guided(task: Any, recipe: Recipe) -> Any:
    """KgCoOp's loss for the task: the recipe's weight, the given template or the data set's CoOp template."""
    from ...methods.kgcoop import KnowledgeGuidedLoss, method_configs

    config = method_configs(recipe.method_options, where=f"recipe {recipe.name!r} method_options")
    return KnowledgeGuidedLoss(config) if config.template else KnowledgeGuidedLoss(config, dataset=task.dataset)


def kgcoop_term(model: Any, task: Any, recipe: Recipe, term: Any = None) -> Callable[[Tensor, Tensor, int], Tensor]:
    """CE + KgCoOp's knowledge-guided term of ``model`` over the base classes."""
    term = knowledge_guided(task, recipe) if term is None else term
    base = check_base_labels(task)
    return lambda x, y, epoch: term.from_model(model, x, y, classes=base)


def check_recipe(recipe: Recipe) -> None:
    """The recipe's ``method_options`` against KgCoOp's typed config (before any work)."""
    from ...methods.kgcoop import method_configs

    method_configs(recipe.method_options, where=f"recipe {recipe.name!r} method_options")


register_objective("kgcoop", kgcoop, "kgcoop", check_recipe=check_recipe, term=kgcoop_term)
