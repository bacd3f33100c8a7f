"""Sampling: pretraining batches (with captions) and the shifted downstream base/new split."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .classes import MOTIONS, TEMPLATES, World
from .config import WorldConfig
from .render import draw, normalise


def _layout(rng: np.random.Generator, n: int, size_range: tuple[float, float], scale: float):
    r = rng.uniform(*size_range, size=n) * scale
    cx = rng.uniform(-1, 1, size=n) * (1 - r)
    cy = rng.uniform(-1, 1, size=n) * (1 - r)
    angle = rng.uniform(-0.35, 0.35, size=n)
    return cx, cy, r, angle


def render_labels(cfg: WorldConfig, rng: np.random.Generator, labels: np.ndarray, *, shifted: bool,
                  frames: int | None = None) -> Tensor:
    """Images (N, 3, S, S) or videos (N, T, 3, S, S) of classes ``labels``, normalised.

    ``shifted`` applies the downstream shift: smaller shapes on striped, noisier backgrounds.
    Videos give each clip a random motion from ``MOTIONS``.
    """
    colour, shape = np.divmod(labels, cfg.n_shapes)
    scale = cfg.shift_scale if shifted else 1.0
    stripes = cfg.shift_stripes if shifted else 0.0
    noise = 0.05 + (cfg.shift_noise if shifted else 0.0)
    lift = cfg.shift_background if shifted else 0.0
    cx, cy, r, angle = _layout(rng, len(labels), cfg.size_range, scale)
    if frames is None:
        return normalise(draw(rng, colour, shape, cx, cy, r, angle, cfg.image_size, stripes, noise, lift))
    motion = np.asarray(list(MOTIONS.values()), dtype=np.float64)[rng.integers(len(MOTIONS), size=len(labels))]
    t = np.arange(frames) - (frames - 1) / 2  # (T,)
    rep = lambda a: np.repeat(a, frames)  # noqa: E731  per-frame copies, clip-major
    tt = np.tile(t, len(labels))
    d = np.repeat(motion, frames, axis=0)
    r_t = np.clip(rep(r) * (1 + d[:, 2] * tt), 0.08, 1.0)
    # one background per clip: draw frames with a clip-seeded generator so stripes match across frames
    seeds = rng.integers(2**31, size=len(labels))
    clips = []
    for i in range(len(labels)):
        sl = slice(i * frames, (i + 1) * frames)
        g = np.random.default_rng(seeds[i])
        clips.append(draw(g, np.repeat(colour[i], frames), np.repeat(shape[i], frames),
                          rep(cx)[sl] + d[sl, 0] * tt[sl], rep(cy)[sl] + d[sl, 1] * tt[sl], r_t[sl],
                          rep(angle)[sl] + d[sl, 3] * tt[sl], cfg.image_size, stripes, noise, lift))
    return normalise(np.stack(clips))


def pretrain_batch(cfg: WorldConfig, rng: np.random.Generator) -> tuple[Tensor, Tensor, list[str]]:
    """One pretraining batch: images (B, 3, S, S), labels (B,), captions (mostly ``TEMPLATES[0]``)."""
    world = World(cfg)
    names = world.pretrain_classnames
    labels = rng.integers(len(names), size=cfg.pretrain_batch)
    images = render_labels(cfg, rng, labels, shifted=False)
    other = rng.integers(1, len(TEMPLATES), size=len(labels))
    use_main = rng.random(len(labels)) < cfg.template_share
    captions = [TEMPLATES[0 if m else o].format(names[y]) for y, m, o in zip(labels, use_main, other)]
    return images, torch.from_numpy(labels), captions


@dataclass
class Split:
    """Downstream base-to-new data. Labels are global class indices (``World.classnames``).

    train_x: (shots * n_base, 3, S, S) or (.., T, 3, S, S) base-class few-shot data
    test_base_x / test_new_x: n_test per class, base / new classes
    """

    train_x: Tensor
    train_y: Tensor
    test_base_x: Tensor
    test_base_y: Tensor
    test_new_x: Tensor
    test_new_y: Tensor


def downstream_split(cfg: WorldConfig, seed: int, *, video: bool = False, evaluation: str = "test") -> Split:
    """Few-shot base training set drawn with ``seed``; evaluation sets fixed by the world seed: ``"test"`` (what
    the demo reports) or ``"val"`` (another draw, for choosing settings without looking at the test sets).

    Every downstream image carries the shift (pretraining never sees it)."""
    if evaluation not in ("test", "val"):
        from ...errors import ConfigError

        raise ConfigError(f"evaluation={evaluation!r}: use 'test' or 'val'")
    world = World(cfg)
    frames = cfg.frames if video else None
    base, new = np.asarray(world.base), np.asarray(world.new)
    train_rng = np.random.default_rng([cfg.seed, 1, int(seed), int(video)])
    test_rng = np.random.default_rng([cfg.seed, 2 if evaluation == "test" else 6, int(video)])
    train_y = np.repeat(base, cfg.shots)
    base_y, new_y = np.repeat(base, cfg.n_test), np.repeat(new, cfg.n_test)
    return Split(
        train_x=render_labels(cfg, train_rng, train_y, shifted=True, frames=frames),
        train_y=torch.from_numpy(train_y),
        test_base_x=render_labels(cfg, test_rng, base_y, shifted=True, frames=frames),
        test_base_y=torch.from_numpy(base_y),
        test_new_x=render_labels(cfg, test_rng, new_y, shifted=True, frames=frames),
        test_new_y=torch.from_numpy(new_y),
    )


def source_split(cfg: WorldConfig, seed: int, *, video: bool = False) -> tuple[Tensor, Tensor]:
    """``shots`` shifted items per *source* class (neither base nor new), labels their global indices: the
    labelled data of the source task GA2's hard prompt is tuned on."""
    labels = np.repeat(np.asarray(World(cfg).source), cfg.shots)
    rng = np.random.default_rng([cfg.seed, 4, int(seed), int(video)])
    return render_labels(cfg, rng, labels, shifted=True, frames=cfg.frames if video else None), torch.from_numpy(labels)


def anchor_clips(cfg: WorldConfig, n: int, seed: int) -> Tensor:
    """``n`` unlabelled shifted clips of source classes (GA2's "irrelevant" anchor videos: a label set
    disjoint from base and new)."""
    rng = np.random.default_rng([cfg.seed, 5, int(seed)])
    return render_labels(cfg, rng, rng.choice(World(cfg).source, size=n), shifted=True, frames=cfg.frames)
