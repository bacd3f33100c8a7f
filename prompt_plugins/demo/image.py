"""Image-task runners: CoOp, CoOp trained for the same total budget as CoOp+DPC, and CoOp+DPC (stage 2 with
the hard-negative objective). Prompts are text-side, so they train on frozen features of augmented views;
every stage draws from the same views."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..methods.dpc import DualPromptWrapper, HardNegativeOptimizer
from ..training import FeatureModel, fit_recipe
from .tasks import ImageTask, local_labels

#: DPC stage 2 over the CoOp prompt: of the released stage-2 configs whose batch lets the sampler find negatives for
#: every anchor on the world's 32 base classes, the one with the best mean base accuracy on the *validation* split
#: over seeds 1-3 (``benchmarks/demo_dpc_stage2.py``; benchmarks/RESULTS.md)
DPC_RECIPE = "dpc"


class ViewDataset:
    """``dataset[i] -> (features of a random view of item i, label)``: where the hard-negative objective fetches
    one image of each negative class, a view drawn like the anchors' views."""

    def __init__(self, views: Tensor, labels: Tensor, generator: torch.Generator):
        self.views, self.labels, self.generator = views, labels, generator
        self.targets = labels.tolist()

    def __len__(self) -> int:
        return self.views.shape[1]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        v = int(torch.randint(self.views.shape[0], (1,), generator=self.generator))
        return self.views[v, i], self.targets[i]


def pick_views(views: Tensor, idx: Tensor, generator: torch.Generator) -> Tensor:
    """One random view per item: (V, N, E) features, (b,) indices -> (b, E)."""
    return views[torch.randint(views.shape[0], (len(idx),), generator=generator), idx]


def train_ce(ctx: Any, views: Tensor, labels: Tensor, adapter: Any, recipe: Any, desc: str,
             stop_epoch: int | None = None) -> None:
    """Cross-entropy over the base classes on random views of the base few-shot set (``stop_epoch``: stop there
    in the recipe's schedule)."""
    head, base = FeatureModel(adapter, ctx.scale), ctx.world.base
    targets, g = local_labels(labels, base), torch.Generator().manual_seed(ctx.seed)
    fit_recipe(lambda idx, epoch: F.cross_entropy(head(pick_views(views, idx, g), classes=base), targets[idx]),
               adapter.trainable_parameters(), len(targets), recipe, seed=ctx.seed, desc=desc, progress=ctx.progress,
               stop_epoch=stop_epoch)


def train_hard_negatives(ctx: Any, views: Tensor, labels: Tensor, wrapper: DualPromptWrapper, recipe: Any,
                         desc: str) -> None:
    """DPC stage 2: the parallel prompt trained with the dynamic hard-negative objective alone (symmetric
    InfoNCE over each anchor and its K hardest base-class negatives, one random view each)."""
    head, g = FeatureModel(wrapper, ctx.scale), torch.Generator().manual_seed(ctx.seed)
    dataset = ViewDataset(views, labels, g)
    objective = HardNegativeOptimizer(head, dataset, top_k=recipe.top_k, seed=ctx.seed)
    fit_recipe(lambda idx, epoch: objective(pick_views(views, idx, g), labels[idx]), wrapper.trainable_parameters(),
               len(labels), recipe, seed=ctx.seed, desc=desc, progress=ctx.progress)


def run_coop(ctx: Any) -> tuple[float, float]:
    task: ImageTask = ctx.task("image")
    with ctx.attached("coop", "image") as prompted:
        train_ce(ctx, task.train_views, task.split.train_y, prompted, ctx.recipe("coop"), f"CoOp (image, seed {ctx.seed})")
        ctx.save("coop/image", prompted)
        return ctx.evaluate_text(task, prompted)


def run_coop_same_budget(ctx: Any) -> tuple[float, float]:
    """CoOp continued with its own recipe for the epochs DPC's stage 2 adds: stage 1 + stage 2 epochs in all."""
    task: ImageTask = ctx.task("image")
    with ctx.attached("coop", "image", state=ctx.state("coop/image", run_coop)) as prompted:
        recipe = ctx.recipe("coop").replace(epochs=ctx.recipe(DPC_RECIPE).epochs)
        train_ce(ctx, task.train_views, task.split.train_y, prompted, recipe, f"CoOp +{recipe.epochs} epochs (seed {ctx.seed})")
        return ctx.evaluate_text(task, prompted)


def run_coop_dpc(ctx: Any) -> tuple[float, float]:
    task: ImageTask = ctx.task("image")
    recipe = ctx.recipe(DPC_RECIPE)
    with ctx.attached("coop", "image", state=ctx.state("coop/image", run_coop)) as prompted:
        wrapper = DualPromptWrapper(prompted, ctx.base_names, **recipe.dpc_options()["wrapper"])
        train_hard_negatives(ctx, task.train_views, task.split.train_y, wrapper, recipe,
                             f"CoOp+DPC (image, seed {ctx.seed})")
        result = ctx.evaluate_text(task, wrapper)
        wrapper.unwrap()
        return result
