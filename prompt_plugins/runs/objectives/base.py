"""What every method's training objective is (``Objective``), what building one is given (``ObjectiveInputs``),
the registry of builders (``register_objective``) and the recipe each method trains with."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ...data import ItemDataset, Task
from ...errors import ConfigError
from ...recipes import Recipe, get_recipe


@dataclass
class Objective:
    """adapter: what is saved; loss(x, y, epoch) -> scalar; params() -> the trainable parameters;
    generators: random streams saved with every checkpoint; notes: what the run should print;
    end_epoch(epoch): called after the last step of every epoch (after the lr step), e.g. PromptSRC's prompt
    aggregation; stateful: objects with ``state_dict()`` / ``load_state_dict()`` saved in every training state and
    restored by ``--resume`` (the aggregation's running sums); close(): called when the seed ends, trained or not (e.g.
    ejecting PromptKD's teacher from its CLIP)."""

    adapter: nn.Module
    loss: Callable[[Tensor, Tensor, int], Tensor]
    params: Callable[[], list[nn.Parameter]]
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    end_epoch: Callable[[int], None] | None = None
    stateful: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] | None = None


@dataclass
class ObjectiveInputs:
    """What a builder gets: the backbone, the seed's task and training set, the effective recipe, and the method
    inputs of the plan (``plan``: the ``TrainPlan``; ``stage1``: DPC's stage-1 adapter; ``anchors``: GA2's clips;
    ``teacher_model``: PromptKD's teacher CLIP, loaded once for every seed)."""

    model: nn.Module
    task: Task
    recipe: Recipe
    seed: int
    train_set: ItemDataset
    plan: Any
    stage1: Path | None = None
    anchors: ItemDataset | None = None
    teacher_model: nn.Module | None = None


@dataclass(frozen=True)
class ObjectiveSpec:
    """A method's builder, the recipe it trains with unless ``--recipe`` names another, an optional check of the
    effective recipe run before any work (e.g. its ``method_options`` against the method's typed configs), and which
    items it trains on (``items(splits, task, recipe)``; None: the task's few-shot base set), and its training loss
    as a term on any ``PromptedCLIP``-like model (``term(model, task, recipe) -> loss(x, y, epoch)``): DPC's stage 2
    runs it on the parallel prompt's route when asked (``DPCStage2Options.backbone_loss``)."""

    build: Callable[[ObjectiveInputs], Objective]
    default_recipe: str
    check_recipe: Callable[[Recipe], None] | None = None
    items: Callable[[Any, Task, Recipe], list[Any]] | None = None
    term: Callable[[Any, Task, Recipe], Callable[[Tensor, Tensor, int], Tensor]] | None = None


OBJECTIVES: dict[str, ObjectiveSpec] = {}


def register_objective(method: str, build: Callable[[ObjectiveInputs], Objective], default_recipe: str, *,
                       check_recipe: Callable[[Recipe], None] | None = None,
                       items: Callable[[Any, Task, Recipe], list[Any]] | None = None,
                       term: Callable[[Any, Task, Recipe], Callable[[Tensor, Tensor, int], Tensor]] | None = None
                       ) -> None:
    OBJECTIVES[method] = ObjectiveSpec(build, default_recipe, check_recipe, items, term)


def training_items(method: str, splits: Any, task: Task, recipe: Recipe) -> list[Any]:
    """The items ``method`` trains on: the task's few-shot base set unless the method says otherwise (PromptKD: the
    unlabeled train split)."""
    spec = OBJECTIVES.get(method)
    return task.train if spec is None or spec.items is None else spec.items(splits, task, recipe)


def build_objective(method: str, inputs: ObjectiveInputs) -> Objective:
    if method not in OBJECTIVES:
        raise ConfigError(f"--method {method!r} is unknown; use one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[method].build(inputs)


def method_recipe(method: str, name: str | None) -> Recipe:
    """The released recipe ``name`` (default: the method's), which must be one of ``method``'s."""
    recipe = get_recipe(name or OBJECTIVES[method].default_recipe)
    if recipe.method != method:
        from ...recipes import RECIPES

        raise ConfigError(f"--recipe {recipe.name} is a {recipe.method} recipe but --method is {method}: pass a "
                          f"{method} recipe ({sorted(k for k, r in RECIPES.items() if r.method == method)}) or "
                          f"--method {recipe.method}")
    return recipe


def single_device(overrides: dict[str, Any], recipe: Recipe | None = None) -> dict[str, Any]:
    """``overrides`` for one device: the whole ``batch_size`` is one batch per optimisation step. With ``recipe``, a
    ``method_options`` override is merged into the recipe's own (``--set 'method_options={"selection": "best_val"}'``
    keeps its other released settings)."""
    out = {"gpus": 1, "accumulation": 1, **overrides}
    if recipe is not None and isinstance(overrides.get("method_options"), dict):
        out["method_options"] = {**recipe.method_options, **overrides["method_options"]}
    return out


def effective_recipe(method: str, name: str | None, overrides: dict[str, Any], backend: Any
                     ) -> tuple[Recipe, list[str]]:
    """The recipe ``name`` (default: the method's) with ``overrides``, its prompt depth capped by the backbone's
    layers; -> (recipe, notes on what was changed)."""
    recipe = method_recipe(method, name)
    notes, changes = [], {}
    if recipe.gpus > 1 or recipe.accumulation > 1:
        notes.append(f"recipe {recipe.name}: the released batch of {recipe.batch_size} ({recipe.gpus} GPU(s) x "
                     f"{recipe.micro_batch} x {recipe.accumulation} accumulation) runs as one batch per step here")
    recipe = recipe.replace(**single_device(overrides, recipe))
    if method == "dpc":  # the prompt's shape comes from the stage-1 adapter
        return recipe, notes
    if recipe.depth > backend.text_layers:
        changes["depth"] = backend.text_layers
    if recipe.visual_depth is not None and backend.vision_layers and recipe.visual_depth > backend.vision_layers:
        changes["visual_depth"] = backend.vision_layers
    if recipe.n_visual_ctx and not backend.vision_width:
        changes.update(n_visual_ctx=0, visual_depth=None)
    for key, value in changes.items():
        notes.append(f"recipe {recipe.name}: {key} {getattr(recipe, key)} -> {value} (this backbone's "
                     f"{'visual tower' if 'visual' in key else 'text tower'})")
    return (recipe.replace(**changes) if changes else recipe), notes


def check_base_labels(task: Task) -> Tensor:
    """The base classes as labels 0..B-1 (what every objective trains on)."""
    if task.base != list(range(len(task.base))):
        raise ConfigError(f"{task.dataset}: base classes must be labels 0..{len(task.base) - 1}")
    return torch.tensor(task.base)
