"""promptsrc: PromptSRC's loss over the base classes (``PromptSRCLoss``: CE + the L1 terms to the frozen text target
and frozen image features + the KL to the frozen logits) and its Gaussian prompt aggregation after every epoch
(``Objective.end_epoch``; the running sums are ``Objective.stateful``, so ``--resume`` continues them). After the
last epoch the adapter holds the aggregated prompts, which is what is saved."""
from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

from ...recipes import Recipe
from ...training import seeded
from .base import Objective, ObjectiveInputs, check_base_labels, register_objective


def promptsrc(inputs: ObjectiveInputs) -> Objective:
    from ...methods.promptsrc import GaussianPromptAggregation, PromptSRCLoss, method_configs
    from ...registry import wrap

    model, task, recipe, seed = inputs.model, inputs.task, inputs.recipe, inputs.seed
    losses, gpa_config = method_configs(recipe.method_options, where=f"recipe {recipe.name!r} method_options")
    adapter = seeded(seed, lambda: wrap(model, task.classnames, **recipe.wrap_options()))
    term = PromptSRCLoss(losses)
    notes = [f"promptsrc: text {losses.text_weight:g} / image {losses.image_weight:g} / KL {losses.kl_weight:g} "
             f"({losses.kl_reduction}); frozen text target over {len(term.targets.templates)} templates"]
    end_epoch, stateful = None, {}
    if gpa_config.gpa:
        gpa = GaussianPromptAggregation(adapter.prompt, recipe.epochs, gpa_config.gpa_mean, gpa_config.gpa_std)
        end_epoch, stateful = gpa.end_epoch, {"gpa": gpa}
        notes.append(f"promptsrc: GPA mean {gpa_config.gpa_mean:g}, std {gpa_config.gpa_std:g} over "
                     f"{recipe.epochs} epochs (the saved prompts are the aggregate)")
    else:
        notes.append("promptsrc: GPA off (gpa=false): the last epoch's prompts are saved")

    return Objective(adapter, promptsrc_term(adapter, task, recipe, term), adapter.trainable_parameters, {}, notes,
                     end_epoch=end_epoch, stateful=stateful)


def promptsrc_term(model: Any, task: Any, recipe: Recipe, term: Any = None) -> Callable[[Tensor, Tensor, int], Tensor]:
    """PromptSRC's loss (CE + the self-regulating terms) of ``model`` over the base classes; no aggregation."""
    from ...methods.promptsrc import PromptSRCLoss, method_configs

    if term is None:
        term = PromptSRCLoss(method_configs(recipe.method_options, where=f"recipe {recipe.name!r} method_options")[0])
    base = check_base_labels(task)
    return lambda x, y, epoch: term.from_model(model, x, y, classes=base)


def check_recipe(recipe: Recipe) -> None:
    """The recipe's ``method_options`` against PromptSRC's typed configs (before any work)."""
    from ...methods.promptsrc import method_configs

    method_configs(recipe.method_options, where=f"recipe {recipe.name!r} method_options")


register_objective("promptsrc", promptsrc, "promptsrc", check_recipe=check_recipe, term=promptsrc_term)
