"""What ``train`` optimises for each method, built from a recipe: the adapter to save, the loss of a batch, the
trainable parameters and the random generators a checkpoint must carry.

coop / ivlp   ``wrap(model, classnames, **recipe.wrap_options())``; cross-entropy over the base classes.
ga2           the same with ``hard_prompt=`` (a file, or an adapter folder whose ``prompt.ctx`` is used), plus
              the attribute-anchor KL (``AttributeAnchorLoss``, ``anchor_kl``) on ``anchor_clips_per_step``
              unlabelled anchor clips per step when anchors are given.
dpc           stage 2 on a stage-1 adapter (``DualPromptWrapper`` on ``from_pretrained``): the base classes get
              the tuned prompt, new classes keep the stage-1 prompt P; DPC's hard-negative objective.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import ItemDataset, Task, mix_seed
from ..errors import ConfigError
from ..recipes import Recipe, get_recipe
from ..training import seeded

#: the recipe each method trains with unless ``--recipe`` names another
DEFAULT_RECIPES = {"coop": "coop", "ivlp": "ivlp_vifi", "dpc": "dpc", "ga2": "ga2"}
METHODS = tuple(DEFAULT_RECIPES)


@dataclass
class Objective:
    """adapter: what is saved; loss(x, y, epoch) -> scalar; params() -> the trainable parameters;
    generators: random streams saved with every checkpoint; notes: what the run should print."""

    adapter: nn.Module
    loss: Callable[[Tensor, Tensor, int], Tensor]
    params: Callable[[], list[nn.Parameter]]
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def effective_recipe(method: str, name: str | None, overrides: dict[str, Any], backend: Any
                     ) -> tuple[Recipe, list[str]]:
    """The recipe ``name`` (default: the method's) with ``overrides``, its prompt depth capped by the backbone's
    layers; -> (recipe, notes on what was changed)."""
    recipe = method_recipe(method, name)
    notes, changes = [], {}
    if recipe.gpus > 1 or recipe.accumulation > 1:
        notes.append(f"recipe {recipe.name}: the released batch of {recipe.batch_size} ({recipe.gpus} GPU(s) x "
                     f"{recipe.micro_batch} x {recipe.accumulation} accumulation) runs as one batch per step here")
    recipe = recipe.replace(**single_device(overrides))
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


def method_recipe(method: str, name: str | None) -> Recipe:
    """The released recipe ``name`` (default: the method's), which must be one of ``method``'s."""
    recipe = get_recipe(name or DEFAULT_RECIPES[method])
    if recipe.method != method:
        raise ConfigError(f"--recipe {recipe.name} is a {recipe.method} recipe but --method is {method}: pass a "
                          f"{method} recipe ({sorted(k for k, r in _recipes().items() if r.method == method)}) or "
                          f"--method {recipe.method}")
    return recipe


def single_device(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` for one device: the whole ``batch_size`` is one batch per optimisation step."""
    return {"gpus": 1, "accumulation": 1, **overrides}


def _recipes() -> dict[str, Recipe]:
    from ..recipes import RECIPES

    return RECIPES


def hard_prompt_file(path: str) -> str:
    """A hard-prompt file: ``path`` itself, or an adapter folder's weights (its ``prompt.ctx``)."""
    p = Path(path)
    if p.is_dir():
        from ..checkpoint import WEIGHTS_NAME

        if not (p / WEIGHTS_NAME).is_file():
            raise ConfigError(f"--hard-prompt {path!r} is a folder without {WEIGHTS_NAME}; pass a checkpoint file "
                              "or an adapter folder written by train")
        return str(p / WEIGHTS_NAME)
    return str(p)


def _check_base_labels(task: Task) -> Tensor:
    if task.base != list(range(len(task.base))):
        raise ConfigError(f"{task.dataset}: base classes must be labels 0..{len(task.base) - 1}")
    return torch.tensor(task.base)


def cross_entropy(model: nn.Module, task: Task, recipe: Recipe, seed: int, *, hard_prompt: str | None = None,
                  anchors: ItemDataset | None = None, anchor_weight: float = 1.0) -> Objective:
    """coop / ivlp / ga2: cross-entropy over the base classes (+ GA2's anchor term)."""
    from ..registry import wrap

    options = recipe.wrap_options()
    if recipe.method == "ga2":
        options["hard_prompt"] = hard_prompt_file(hard_prompt) if hard_prompt else None
    adapter = seeded(seed, lambda: wrap(model, task.classnames, **options))
    base = _check_base_labels(task)
    notes: list[str] = []
    anchor_term = None
    generators: dict[str, torch.Generator] = {}
    if recipe.method == "ga2" and anchors is not None and recipe.anchor_clips_per_step:
        anchor_term = _anchor_term(adapter, anchors, recipe.anchor_clips_per_step, anchor_weight, task, seed,
                                   generators)
    elif recipe.method == "ga2":
        notes.append("ga2: no --anchors given: training without the attribute-anchor term")

    def loss(x: Tensor, y: Tensor, epoch: int) -> Tensor:
        value = F.cross_entropy(adapter(x, base), y)
        return value if anchor_term is None else value + anchor_term(epoch, x.device)

    return Objective(adapter, loss, adapter.trainable_parameters, generators, notes)


def _anchor_term(adapter: nn.Module, anchors: ItemDataset, per_step: int, weight: float, task: Task, seed: int,
                 generators: dict[str, torch.Generator]) -> Callable[[int, torch.device], Tensor]:
    from ..methods.ga2 import AttributeAnchorLoss

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


def dpc(model: nn.Module, task: Task, recipe: Recipe, seed: int, stage1: Path, train_set: ItemDataset
        ) -> Objective:
    """DPC stage 2 on the stage-1 adapter ``stage1`` with the hard-negative objective."""
    from ..methods.dpc import DualPromptWrapper, HardNegativeOptimizer
    from ..model import PromptedCLIP
    from ..registry import from_pretrained

    _check_base_labels(task)
    if len(task.base) < 2:
        raise ConfigError(f"DPC's hard negatives need at least 2 base classes; {task.dataset} has {len(task.base)}")
    prompted = from_pretrained(model, stage1, classnames=task.classnames)
    if not isinstance(prompted, PromptedCLIP):
        raise ConfigError(f"--from {str(stage1)!r} is a {type(prompted).__name__} adapter; DPC's stage 2 starts from "
                          "a coop, ivlp or ga2 adapter written by train")
    wrapper = DualPromptWrapper(prompted, task.base_names, **recipe.dpc_options()["wrapper"])
    top_k = min(recipe.top_k, len(task.base) - 1)
    g = torch.Generator().manual_seed(mix_seed(seed, 0xD9C))
    objective = HardNegativeOptimizer(wrapper, train_set, top_k=top_k, generator=g)
    notes = [] if top_k == recipe.top_k else [f"dpc: top_k {recipe.top_k} -> {top_k} (the wrong base classes there are)"]
    return Objective(wrapper, lambda x, y, epoch: objective(x, y), wrapper.trainable_parameters, {"dpc": g}, notes)
