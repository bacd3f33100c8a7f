"""The demo's data for one seed: the image task as frozen features of augmented views (its prompts are text-side),
the video task as clips (its prompts include visual ones), and the source data GA2 needs."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..registry import wrap
from ..training import encode_images
from .world import Split, World, WorldConfig, anchor_clips, augment, downstream_split, source_split

#: augmented views of every few-shot image whose frozen features the image task trains on
N_VIEWS = 8
#: unlabelled anchor clips of source classes rendered per seed (GA2 draws a few per step)
N_ANCHORS = 256


@dataclass
class ImageTask:
    """train_views: (V, N, E) frozen features of V views of the N few-shot images; base/new: test features."""

    split: Split
    train_views: Tensor
    base_feats: Tensor
    new_feats: Tensor


@dataclass
class VideoTask:
    """split: clips (few-shot base training set, base / new test sets); anchors: unlabelled source clips;
    zero_shot_*: frozen features of the test clips."""

    split: Split
    anchors: Tensor
    zero_shot_base: Tensor
    zero_shot_new: Tensor


def view_features(encode, x: Tensor, views: int, seed: int) -> Tensor:
    """(V, N, E) features of ``views`` augmented views of ``x`` (view 0 is ``x`` itself)."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([encode(x if v == 0 else augment(x, g)) for v in range(views)])


def frozen_encoder(model: nn.Module, world: World):
    """A callable: images or clips -> frozen (zero-shot) CLIP features."""
    frozen = wrap(model, world.classnames, method="coop", n_ctx=1)

    def encode(x: Tensor) -> Tensor:
        with frozen.disabled():
            return encode_images(frozen, x)

    return frozen, encode


def build_image_task(cfg: WorldConfig, world: World, model: nn.Module, seed: int, evaluation: str = "test"
                     ) -> ImageTask:
    split = downstream_split(cfg, seed, video=False, evaluation=evaluation)
    frozen, encode = frozen_encoder(model, world)
    task = ImageTask(split, view_features(encode, split.train_x, N_VIEWS, seed), encode(split.test_base_x),
                     encode(split.test_new_x))
    frozen.eject()
    return task


def build_video_task(cfg: WorldConfig, world: World, model: nn.Module, seed: int, evaluation: str = "test"
                     ) -> VideoTask:
    split = downstream_split(cfg, seed, video=True, evaluation=evaluation)
    frozen, encode = frozen_encoder(model, world)
    task = VideoTask(split, anchor_clips(cfg, N_ANCHORS, seed), encode(split.test_base_x), encode(split.test_new_x))
    frozen.eject()
    return task


def source_task(cfg: WorldConfig) -> tuple[Tensor, Tensor]:
    """The source clips and labels GA2's hard prompt is tuned on (one draw per world, as a released hard
    prompt is one file for every seed)."""
    return source_split(cfg, seed=0, video=True)


def local_labels(y: Tensor, classes: list[int]) -> Tensor:
    """Global class indices -> positions in ``classes``."""
    lookup = {c: i for i, c in enumerate(classes)}
    return torch.tensor([lookup[int(v)] for v in y])


__all__ = ["ImageTask", "VideoTask", "build_image_task", "build_video_task", "source_task", "view_features",
           "local_labels", "N_VIEWS", "N_ANCHORS"]
