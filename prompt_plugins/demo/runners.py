"""The demo's method runners: base-to-new prompt tuning on the built-in procedural world.

``prompt-plugins demo`` pretrains (or loads the cached) tiny CLIP, then runs every method in ``RUNNERS`` per
seed and prints base / new / HM accuracy and seconds per method. A runner is a small function
``runner(ctx) -> (base_acc, new_acc)``; add one to ``RUNNERS`` to add a method.

Every demo prompt is text-side (CoOp context, GA2's coupler and deep text prompts), so the frozen
image/video features are computed once per task and training runs the text tower only.
Cross-entropy and ``HardNegativeOptimizer`` see those features through :class:`FeatureModel`
exactly as they would see a model; ``AttributeAnchorLoss`` takes them directly (its features API).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ..attachment import attached_wrapper
from ..base_new import accuracy
from ..errors import ConfigError
from ..methods.dpc import DualPromptWrapper, HardNegativeOptimizer
from ..methods.ga2 import AttributeAnchorLoss
from ..model import PromptedCLIP
from ..registry import wrap
from .world import downstream_split
from .world.data import render_labels
from ..training import FeatureModel, encode_images, eval_mode, fit, fit_loss

#: DPC stage 2 (hard-negative optimiser): anchors per step, K hardest wrong classes, w_b. Its learning
#: rate is w_b x the backbone's: AdamW steps the stored M by ~lr and X = P + (M - P) / w_b moves 1/w_b
#: times as far, so the parallel prompt X then moves at the backbone's own rate.
DPC_BATCH, DPC_TOP_K, DPC_WEIGHT_BASE = 32, 8, 0.2
#: GA2 attribute anchors: weight of the anchor KL, anchor clips per step, anchor clips rendered
ANCHOR_WEIGHT, ANCHOR_BATCH, N_ANCHORS = 1.0, 32, 256


@dataclass
class Task:
    """One downstream task (images or videos) with frozen features precomputed.

    anchor_feats: frozen features of unlabelled clips from the pretraining distribution (GA2's
    "irrelevant" anchor videos); video task only."""

    name: str
    split: Any  # world.data.Split
    train_feats: Tensor
    base_feats: Tensor
    new_feats: Tensor
    anchor_feats: Tensor | None = None


@dataclass
class Context:
    cfg: Any
    world: Any
    model: torch.nn.Module
    seed: int
    tasks: dict[str, Task]
    steps: int
    lr: float
    batch: int
    progress: bool
    artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def base_names(self) -> list[str]:
        return [self.world.classnames[i] for i in self.world.base]

    @property
    def scale(self) -> float:
        return self.model.logit_scale.exp().item()


def seeded(seed: int, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` (which may initialise parameters from the global generator) under ``seed``,
    leaving the caller's global RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def wrap_model(model: torch.nn.Module, classnames: list[str], **options: Any) -> PromptedCLIP:
    """``wrap`` the demo's model, first ejecting the adapter an earlier runner left on it (one wrapper per model
    at a time): that runner's results are recorded, and an ejected adapter's prompt tensors stay readable."""
    earlier = attached_wrapper(model)
    if earlier is not None:
        earlier.eject()
    return wrap(model, classnames, **options)


def _check_text_side(adapter: Any) -> None:
    target = getattr(adapter, "target", adapter)
    if target.prompt().visual is not None:
        raise ConfigError("the demo trains on precomputed image features: its prompts must be text-side only")


@torch.no_grad()
def evaluate(ctx: Context, task: Task, adapter: Any) -> tuple[float, float]:
    """(base acc, new acc): base test items among the base classes, new among the new classes."""
    world, split = ctx.world, task.split
    with eval_mode(adapter):
        base = accuracy(task.base_feats @ adapter.encode_text(world.base).t(), _local(split.test_base_y, world.base))
        new = accuracy(task.new_feats @ adapter.encode_text(world.new).t(), _local(split.test_new_y, world.new))
    return base, new


def _local(y: Tensor, classes: list[int]) -> Tensor:
    lookup = {c: i for i, c in enumerate(classes)}
    return torch.tensor([lookup[int(v)] for v in y])


def train_ce(ctx: Context, task: Task, adapter: Any, *, desc: str,
             extra_loss: Callable[[], Tensor] | None = None) -> None:
    """Cross-entropy over the base classes on the base few-shot set (+ ``extra_loss()`` per step)."""
    _check_text_side(adapter)
    head = FeatureModel(adapter, ctx.scale)
    base = ctx.world.base
    targets = _local(task.split.train_y, base)
    extra = None if extra_loss is None else (lambda idx: extra_loss())
    fit(lambda idx: head(task.train_feats[idx], classes=base), adapter.trainable_parameters(), targets,
        steps=ctx.steps, lr=ctx.lr, batch=ctx.batch, seed=ctx.seed, desc=desc, progress=ctx.progress,
        extra_loss=extra)


def train_dpc(ctx: Context, task: Task, wrapper: DualPromptWrapper, *, desc: str) -> None:
    """DPC stage 2: the parallel prompt trained with the dynamic hard-negative optimiser alone
    (symmetric InfoNCE over anchors and their K hardest base-class negatives, as released)."""
    _check_text_side(wrapper)
    head = FeatureModel(wrapper, ctx.scale)
    feats, labels = task.train_feats, task.split.train_y
    dataset = [(feats[i], int(labels[i])) for i in range(len(labels))]
    top_k = min(DPC_TOP_K, len(ctx.world.base) - 1)  # small worlds have fewer wrong classes
    hn = HardNegativeOptimizer(head, dataset, labels=labels, top_k=top_k, seed=ctx.seed)
    fit_loss(lambda idx: hn(feats[idx], labels[idx]), wrapper.trainable_parameters(), len(labels),
             steps=ctx.steps, lr=ctx.lr * wrapper.weight_base, batch=DPC_BATCH, seed=ctx.seed, desc=desc, progress=ctx.progress)


# ---------------------------------------------------------------------------- runners
def _coop(ctx: Context) -> PromptedCLIP:
    return seeded(ctx.seed, lambda: wrap_model(ctx.model, ctx.world.classnames, method="coop",
                                               n_ctx=ctx.cfg.n_ctx))


def run_zero_shot(ctx: Context, task_name: str = "image") -> tuple[float, float]:
    prompted = wrap_model(ctx.model, ctx.world.classnames, method="coop", n_ctx=1)
    with prompted.disabled():
        result = evaluate(ctx, ctx.tasks[task_name], prompted)
    prompted.eject()
    return result


def run_coop(ctx: Context, task_name: str = "image") -> tuple[float, float]:
    prompted = _coop(ctx)
    train_ce(ctx, ctx.tasks[task_name], prompted, desc=f"CoOp ({task_name}, seed {ctx.seed})")
    ctx.artifacts[f"coop/{task_name}"] = prompted
    return evaluate(ctx, ctx.tasks[task_name], prompted)


def _tuned(ctx: Context, key: str, runner: Callable[[Context], Any]) -> Any:
    """The tuned adapter ``key`` of this seed, running its method first if it has not run."""
    if key not in ctx.artifacts:
        runner(ctx)
    return ctx.artifacts[key]


def _dpc_on(ctx: Context, task_name: str, prompted: PromptedCLIP, label: str) -> tuple[float, float]:
    """DPC on top of a tuned prompt: the tuned prompt is the frozen backbone prompt P, a parallel
    copy is tuned for base classes (w_b = 0.2), new classes keep P (w_n = 0)."""
    wrapper = DualPromptWrapper(prompted, base_classes=ctx.base_names, weight_base=DPC_WEIGHT_BASE)
    train_dpc(ctx, ctx.tasks[task_name], wrapper, desc=f"{label} ({task_name}, seed {ctx.seed})")
    ctx.artifacts[f"{label}/{task_name}"] = wrapper
    return evaluate(ctx, ctx.tasks[task_name], wrapper)


def run_coop_dpc(ctx: Context, task_name: str = "image") -> tuple[float, float]:
    prompted = _tuned(ctx, f"coop/{task_name}", lambda c: run_coop(c, task_name))
    return _dpc_on(ctx, task_name, prompted, "CoOp+DPC")


def attribute_bank(world: Any) -> list[str]:
    """GA2's generic attributes for this world: the base colours, every shape and motion word (no class
    names, and none of the new classes' colours: tuning never sees those)."""
    from .world.classes import MOTIONS

    return [*world.colours[: world.config.n_colours // 2], *world.shapes, *MOTIONS]


def run_ga2(ctx: Context) -> tuple[float, float]:
    """GA2 on videos. The hard prompt is the CoOp context tuned on the *image* task of this seed
    (another dataset, as GA2 uses prompts tuned on Kinetics); the soft tokens and the mapping layer
    train with cross-entropy + the attribute-anchor KL on unlabelled anchor clips (pretraining-style,
    base colours only) over the attribute bank, the prompted side reading it through the learned context."""
    hard = _tuned(ctx, "coop/image", lambda c: run_coop(c, "image")).prompt.ctx.detach().clone()
    prompted = seeded(ctx.seed, lambda: wrap_model(ctx.model, ctx.world.classnames, method="ga2", hard_prompt=hard,
                                                       n_visual_ctx=0))
    task = ctx.tasks["video"]
    anchor_loss = AttributeAnchorLoss(attribute_bank(ctx.world), weight=ANCHOR_WEIGHT, bank_side="prompted",
                                         frozen_template="a photo of a {}.", scale=ctx.scale)
    bank = anchor_loss.frozen_bank_features(prompted)
    g = torch.Generator().manual_seed(ctx.seed)

    def anchor_term() -> Tensor:
        a = task.anchor_feats[torch.randperm(len(task.anchor_feats), generator=g)[:ANCHOR_BATCH]]
        # text-side prompts leave the anchors' image features frozen: prompted == frozen features
        return anchor_loss(a, bank, frozen_anchor_features=a,
                           prompted_bank_features=anchor_loss.prompted_bank_features(prompted))

    train_ce(ctx, task, prompted, desc=f"GA2 (video, seed {ctx.seed})", extra_loss=anchor_term)
    ctx.artifacts["ga2/video"] = prompted
    return evaluate(ctx, task, prompted)


def run_ga2_dpc(ctx: Context) -> tuple[float, float]:
    return _dpc_on(ctx, "video", _tuned(ctx, "ga2/video", run_ga2), "GA2+DPC")


@dataclass(frozen=True)
class Runner:
    name: str
    task: str
    fn: Callable[[Context], tuple[float, float]]


#: methods in run order (later ones reuse earlier results of the same seed)
RUNNERS: list[Runner] = [
    Runner("zero-shot", "image", lambda c: run_zero_shot(c, "image")),
    Runner("CoOp", "image", lambda c: run_coop(c, "image")),
    Runner("CoOp+DPC", "image", lambda c: run_coop_dpc(c, "image")),
    Runner("zero-shot", "video", lambda c: run_zero_shot(c, "video")),
    Runner("CoOp", "video", lambda c: run_coop(c, "video")),
    Runner("GA2", "video", run_ga2),
    Runner("GA2+DPC", "video", run_ga2_dpc),
]


def build_tasks(cfg: Any, world: Any, model: torch.nn.Module, seed: int, video: bool, device: str,
                anchors: bool = True) -> dict[str, Task]:
    """The seed's image (and video) tasks with frozen features of the few-shot and test data, and for
    videos (``anchors``) of GA2's anchor clips: unlabelled, unshifted clips of base classes."""
    
    frozen = wrap_model(model, world.classnames, method="coop", n_ctx=1)
    tasks = {}
    for name in ("image", "video") if video else ("image",):
        split = downstream_split(cfg, seed, video=name == "video")
        data = [split.train_x, split.test_base_x, split.test_new_x]
        if name == "video" and anchors:
            rng = np.random.default_rng([cfg.seed, 3, int(seed)])
            labels = np.asarray(world.base)[rng.integers(len(world.base), size=N_ANCHORS)]
            data.append(render_labels(cfg, rng, labels, shifted=False, frames=cfg.frames))
        with frozen.disabled():
            tasks[name] = Task(name, split, *[encode_images(frozen, x, device=device) for x in data])
    frozen.eject()
    return tasks
