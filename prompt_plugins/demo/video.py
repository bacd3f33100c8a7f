"""Video-task runners, with text *and* visual prompts trained on the clips: IVLP (deep prompts alone), GA2
without anchors (IVLP + the hard-soft coupler), GA2 (+ the attribute-anchor loss on unlabelled clips of source
classes) and GA2+DPC. GA2's hard prompt is the layer-0 context of an IVLP run on the *source* classes (two extra
colours, in neither base nor new), as GA2-CLIP takes it from a run on another data set."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..methods.dpc import DualPromptWrapper
from ..methods.ga2 import AttributeAnchorLoss
from ..training import encode_images, eval_mode, fit_recipe, seeded
from .image import train_hard_negatives
from .tasks import N_VIEWS, VideoTask, local_labels, view_features
from .world import MOTIONS, augment, cache_dir, read_cached, write_cached

#: GA2's attribute-anchor weight λ (the paper's value is unknown; the spec suggests a sweep over 1-10)
ANCHOR_WEIGHT = 1.0


def attribute_bank(world: Any) -> list[str]:
    """The world's generic attributes: shape and motion words, shared by base and new classes (no colour:
    colours are what tells classes apart, and the new colours stay unseen), plus GA2's negative prompt "else"."""
    return ["else", *world.shapes, *MOTIONS]


def train_clips(ctx: Any, x: torch.Tensor, y: torch.Tensor, classes: list[int], prompted: Any, recipe: Any,
                desc: str, anchor_loss: AttributeAnchorLoss | None = None, anchors: torch.Tensor | None = None,
                seed: int | None = None) -> None:
    """Cross-entropy over ``classes`` on augmented clips (+ the anchor loss on ``recipe.anchor_clips_per_step``
    anchor clips per step); batches and augmentations drawn with ``seed`` (default: the context's)."""
    seed = ctx.seed if seed is None else seed
    targets, g = local_labels(y, classes), torch.Generator().manual_seed(seed)

    def loss(idx: torch.Tensor, epoch: int) -> torch.Tensor:
        value = F.cross_entropy(prompted(augment(x[idx], g), classes), targets[idx])
        if anchor_loss is not None:
            pick = torch.randint(len(anchors), (recipe.anchor_clips_per_step,), generator=g)
            value = value + anchor_loss.from_model(prompted, augment(anchors[pick], g))
        return value

    fit_recipe(loss, prompted.trainable_parameters(), len(targets), recipe, seed=seed, desc=desc,
               progress=ctx.progress)


def hard_prompt_path(ctx: Any) -> Path:
    """Where the world's hard prompt is cached: keyed by the whole world config, the source run's recipe and the
    tiny CLIP's weights (a re-pretrained CLIP gets a new hard prompt)."""
    digest = hashlib.sha256(json.dumps({"world": ctx.cfg.to_dict(), "recipe": ctx.recipe("ga2").to_dict(),
                                        "format": 1}, sort_keys=True, default=str).encode())
    for name, tensor in sorted(ctx.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return cache_dir() / f"hard-prompt-{ctx.cfg.key()}-{digest.hexdigest()[:12]}.pt"


def _train_hard_prompt(ctx: Any) -> torch.Tensor:
    from .tasks import source_task

    x, y = source_task(ctx.cfg)
    with ctx.attached("ivlp", "video", classnames=ctx.world.pretrain_classnames, seed=0) as prompted:
        train_clips(ctx, x, y, ctx.world.source, prompted, ctx.recipe("ga2"), "hard prompt (source classes)", seed=0)
        return prompted.prompt.ctx.detach().clone()


def hard_prompt(ctx: Any) -> torch.Tensor:
    """The layer-0 text context of an IVLP run on the source classes (seed 0): like a released hard prompt, one
    tensor per world, trained on the first call and cached on disk beside the tiny CLIP."""
    if "hard_prompt" not in ctx.shared:
        path = hard_prompt_path(ctx)
        if path.is_file():
            ctx.shared["hard_prompt"] = read_cached(path, "hard prompt")
        else:
            ctx.shared["hard_prompt"] = seeded(0, lambda: _train_hard_prompt(ctx))
            write_cached(path, ctx.shared["hard_prompt"])
    return ctx.shared["hard_prompt"]


def _video_run(ctx: Any, kind: str, key: str, desc: str, anchors: bool = False, **options: Any) -> tuple[float, float]:
    """Train prompts of ``kind`` on the base clips, save them as ``key`` and evaluate (test features kept as
    ``key``)."""
    task: VideoTask = ctx.task("video")
    recipe = ctx.recipe("ga2")
    with ctx.attached(kind, "video", **options) as prompted:
        loss = AttributeAnchorLoss(attribute_bank(ctx.world), weight=ANCHOR_WEIGHT, frozen_template="a photo of a {}.",
                                   scale=ctx.scale) if anchors else None
        train_clips(ctx, task.split.train_x, task.split.train_y, ctx.world.base, prompted, recipe,
                    f"{desc} (video, seed {ctx.seed})", loss, task.anchors)
        ctx.save(key, prompted)
        return ctx.evaluate_clips(task, prompted, features=key)


def run_ivlp(ctx: Any) -> tuple[float, float]:
    return _video_run(ctx, "ivlp", "ivlp/video", "IVLP")


def run_ga2_no_anchors(ctx: Any) -> tuple[float, float]:
    return _video_run(ctx, "ga2", "ga2-no-anchors/video", "GA2 w/o anchors", hard_prompt=hard_prompt(ctx))


def run_ga2(ctx: Any) -> tuple[float, float]:
    return _video_run(ctx, "ga2", "ga2/video", "GA2", anchors=True, hard_prompt=hard_prompt(ctx))


#: GA2+DPC dualises the text side (the coupler's soft tokens and mapping, the deep text prompts), as the released
#: DPC reparameterises text prompts; the visual prompts stay the GA2 backbone's for every class
TEXT_SIDE = ("soft.ctx", "soft.text_deep", "proj.weight", "proj.bias")


def run_ga2_dpc(ctx: Any) -> tuple[float, float]:
    task: VideoTask = ctx.task("video")
    recipe = ctx.recipe("dpc")
    state = ctx.state("ga2/video", run_ga2)
    with ctx.attached("ga2", "video", state=state, hard_prompt=hard_prompt(ctx)) as prompted:
        with eval_mode(prompted):  # the visual prompts are P's for both routes: their features are fixed
            views = view_features(lambda x: encode_images(prompted, x), task.split.train_x, N_VIEWS, ctx.seed)
        names = [n for n in TEXT_SIDE if n in dict(prompted.prompt.named_parameters())]
        wrapper = DualPromptWrapper(prompted, ctx.base_names, prompt_names=names, **recipe.dpc_options()["wrapper"])
        train_hard_negatives(ctx, views, task.split.train_y, wrapper, recipe, f"GA2+DPC (video, seed {ctx.seed})")
        result = ctx.evaluate_clips(task, wrapper, image_encoder=prompted, features="ga2/video")
        wrapper.unwrap()
        return result
