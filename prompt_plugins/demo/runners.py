"""The demo's method runners and what they share (``Context``): base-to-new prompt tuning on the built-in world.

A runner is ``runner(ctx) -> (base accuracy, new accuracy)``; ``RUNNERS`` lists them in run order (later ones
reuse the tuned prompts of earlier ones). Methods train with the released recipes (``prompt_plugins.recipes``),
sized to the world in ``demo_recipe``: image prompts are text-side and train on frozen features of augmented
views; video prompts are text + visual and train on the clips.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from ..base_new import accuracy
from ..recipes import Recipe, get_recipe
from ..registry import wrap
from ..training import encode_images, eval_mode, seeded
from . import image, video
from .tasks import build_image_task, build_video_task, local_labels
from .world import World, WorldConfig


def demo_recipe(name: str, world: World) -> Recipe:
    """A released recipe sized to the world: prompt depth capped by the tiny CLIP's layers, context tokens by the
    world's ``n_ctx`` (its text context is short), DPC's K by the wrong base classes there are, and a multi-GPU
    recipe run as one of its GPUs (the demo has one device): its per-GPU batch and anchor clips, at the released
    lr. Optimiser, lr, epochs and warm-up are the released ones."""
    recipe, cfg = get_recipe(name), world.config
    changes: dict[str, Any] = {"depth": min(recipe.depth, cfg.layers), "n_ctx": min(recipe.n_ctx, cfg.n_ctx)}
    if recipe.gpus > 1:
        changes.update(gpus=1, accumulation=1, batch_size=recipe.batch_size // recipe.gpus // recipe.accumulation)
        if recipe.anchor_clips_per_step:
            changes["anchor_clips_per_step"] = recipe.anchor_clips_per_step // recipe.gpus
    if recipe.visual_depth is not None:
        changes["visual_depth"] = min(recipe.visual_depth, cfg.layers)
    if recipe.n_visual_ctx:
        changes["n_visual_ctx"] = min(recipe.n_visual_ctx, cfg.n_ctx)
    if recipe.top_k is not None:
        changes["top_k"] = min(recipe.top_k, len(world.base) - 1)
    return recipe.replace(**changes)


@dataclass
class Context:
    cfg: WorldConfig
    world: World
    model: nn.Module
    seed: int
    progress: bool
    #: across seeds: the hard prompt (one source run per demo)
    shared: dict[str, Any] = field(default_factory=dict)
    #: "test" (reported) or "val" (for choosing settings)
    evaluation: str = "test"
    artifacts: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    #: this seed's prompted test features (base, new) by key (``evaluate_clips``)
    features: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    _tasks: dict[str, Any] = field(default_factory=dict)

    @property
    def base_names(self) -> list[str]:
        return [self.world.classnames[i] for i in self.world.base]

    @property
    def scale(self) -> float:
        return self.model.logit_scale.exp().item()

    def task(self, name: str) -> Any:
        """The seed's data of task ``name``, built on first use under its own seed: the caller's random stream
        (dropout masks, inits) is the same whichever runner builds it, so rows do not depend on the selection or
        the lanes."""
        if name not in self._tasks:
            build = build_image_task if name == "image" else build_video_task
            self._tasks[name] = seeded(self.seed, lambda: build(self.cfg, self.world, self.model, self.seed,
                                                                self.evaluation))
        return self._tasks[name]

    def recipe(self, name: str) -> Recipe:
        return demo_recipe(name, self.world)

    # ------------------------------------------------------------------ adapters
    def wrap_options(self, kind: str) -> dict[str, Any]:
        """``wrap`` options of a runner kind: "coop" (the CoOp recipe), "ivlp" and "ga2" (the GA2 recipe's deep
        text + visual prompts; "ivlp" without the coupler)."""
        if kind == "coop":
            return self.recipe("coop").wrap_options()
        options = self.recipe("ga2").wrap_options()
        if kind == "ivlp":
            options.update(method="coop", n_ctx=self.recipe("ga2").n_ctx)
        return options

    @contextmanager
    def attached(self, kind: str, task: str, *, state: dict[str, Tensor] | None = None,
                 classnames: list[str] | None = None, seed: int | None = None, **options: Any) -> Iterator[Any]:
        """A fresh adapter of ``kind`` (initialised under the seed, or loaded from ``state``), ejected on exit."""
        names = classnames or self.world.classnames
        adapter = seeded(self.seed if seed is None else seed,
                         lambda: wrap(self.model, names, **{**self.wrap_options(kind), **options}))
        if state is not None:
            adapter.load_adapter_state_dict(state)
        try:
            yield adapter
        finally:
            adapter.eject()

    def save(self, key: str, adapter: Any) -> None:
        """Keep the adapter's prompts as ``key`` (test features cached under ``key`` were the old prompts')."""
        self.artifacts[key] = {k: v.clone() for k, v in adapter.adapter_state_dict().items()}
        self.features.pop(key, None)

    def state(self, key: str, runner: Callable[["Context"], Any]) -> dict[str, Tensor]:
        """The saved prompts ``key`` of this seed, running ``runner`` first (under the seed, as it runs on its
        own, leaving the caller's random stream untouched) if it has not run."""
        if key not in self.artifacts:
            seeded(self.seed, lambda: runner(self))
        return self.artifacts[key]

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _accuracies(self, task: Any, base_feats: Tensor, new_feats: Tensor, text: Callable) -> tuple[float, float]:
        world, split = self.world, task.split
        return (accuracy(base_feats @ text(world.base).t(), local_labels(split.test_base_y, world.base)),
                accuracy(new_feats @ text(world.new).t(), local_labels(split.test_new_y, world.new)))

    def evaluate_text(self, task: Any, adapter: Any) -> tuple[float, float]:
        """(base, new) accuracy with text-side prompts on the task's frozen test features."""
        with eval_mode(adapter):
            return self._accuracies(task, task.base_feats, task.new_feats, adapter.encode_text)

    def evaluate_clips(self, task: Any, adapter: Any, image_encoder: Any = None, features: str | None = None
                       ) -> tuple[float, float]:
        """(base, new) accuracy with the adapter's own (or ``image_encoder``'s) prompted clip features; with
        ``features`` the test features are kept under that key and reused by a later call with the same key (the
        same visual prompts: GA2+DPC evaluates with GA2's)."""
        encoder = adapter if image_encoder is None else image_encoder
        with eval_mode(adapter), eval_mode(encoder):
            feats = self.features.get(features) if features else None
            if feats is None:
                feats = tuple(encode_images(encoder, x) for x in (task.split.test_base_x, task.split.test_new_x))
                if features:
                    self.features[features] = feats
            return self._accuracies(task, *feats, adapter.encode_text)


def run_zero_shot(task_name: str) -> Callable[[Context], tuple[float, float]]:
    def run(ctx: Context) -> tuple[float, float]:
        task = ctx.task(task_name)
        base = task.base_feats if task_name == "image" else task.zero_shot_base
        new = task.new_feats if task_name == "image" else task.zero_shot_new
        with ctx.attached("coop", task_name) as prompted, prompted.disabled():
            return ctx._accuracies(task, base, new, prompted.encode_text)

    return run


@dataclass(frozen=True)
class Runner:
    """``lane``: runners of one lane run in order in one process; lanes run side by side (``--jobs``). A lane
    holds every runner whose prompts a later runner of it reuses (GA2+DPC starts from GA2's prompts); the lanes
    balance the work: image, zero-shot video and IVLP | GA2 w/o anchors, GA2 and GA2+DPC. GA2's hard prompt is
    trained once per world and cached on disk (``video.hard_prompt``), so any lane can use it."""

    name: str
    task: str
    fn: Callable[[Context], tuple[float, float]]
    lane: int = 0


#: methods in run order (later ones reuse the tuned prompts of earlier ones of the same seed)
RUNNERS: list[Runner] = [
    Runner("zero-shot", "image", run_zero_shot("image")),
    Runner("CoOp", "image", image.run_coop),
    Runner("CoOp same budget", "image", image.run_coop_same_budget),
    Runner("CoOp+DPC", "image", image.run_coop_dpc),
    Runner("zero-shot", "video", run_zero_shot("video")),
    Runner("IVLP", "video", video.run_ivlp),
    Runner("GA2 w/o anchors", "video", video.run_ga2_no_anchors, lane=1),
    Runner("GA2", "video", video.run_ga2, lane=1),
    Runner("GA2+DPC", "video", video.run_ga2_dpc, lane=1),
]
