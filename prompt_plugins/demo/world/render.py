"""Vectorised numpy rendering of coloured shapes: (B, 3, S, S) images, or frames of moving shapes.

A shape is an implicit region in its own rotated frame (u, v), radius ``r`` in units of the
half image; pixels are RGB floats in [0, 1].
"""
from __future__ import annotations

import numpy as np

from .classes import COLOURS


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size) + 0.5) / size * 2 - 1
    return c[None, :], -c[:, None]  # x (1, S) to the right, y (S, 1) upwards


def shape_masks(shape: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray, angle: np.ndarray,
                size: int) -> np.ndarray:
    """(N,) shape ids / centres / radii / angles -> (N, S, S) float masks in {0, 1}."""
    x, y = _grid(size)
    dx, dy = x[None] - cx[:, None, None], y[None] - cy[:, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u, v = (cos * dx + sin * dy) / r[:, None, None], (-sin * dx + cos * dy) / r[:, None, None]
    au, av, rad = np.abs(u), np.abs(v), np.sqrt(u * u + v * v)
    regions = np.stack([
        rad <= 1.0,                                              # circle
        np.maximum(au, av) <= 0.8,                               # square
        (v >= -0.6) & (v <= 0.9 - 1.6 * au),                     # triangle
        au + av <= 1.05,                                         # diamond
        (rad <= 1.0) & (rad >= 0.6),                             # ring
        ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0)),  # cross
        (au <= 1.0) & (av <= 0.35),                              # bar
        (rad <= 1.0) & (v >= -0.25),                             # half circle
    ])  # (8, N, S, S)
    return np.take_along_axis(regions, shape[None, :, None, None], axis=0)[0].astype(np.float32)


def background(rng: np.random.Generator, n: int, size: int, stripes: float = 0.0, lift: float = 0.0) -> np.ndarray:
    """(N, 3, S, S) dark grey backgrounds; ``stripes`` > 0 adds randomly oriented coloured stripes."""
    base = (rng.uniform(0.05, 0.3, size=(n, 1, 1, 1)) + lift).astype(np.float32)
    out = np.broadcast_to(base, (n, 3, size, size)).copy()
    if stripes > 0:
        x, y = _grid(size)
        theta = rng.uniform(0, np.pi, size=n)[:, None, None]
        freq = rng.uniform(3, 7, size=n)[:, None, None]
        phase = rng.uniform(0, 2 * np.pi, size=n)[:, None, None]
        wave = 0.5 + 0.5 * np.sin(freq * np.pi * (np.cos(theta) * x + np.sin(theta) * y) + phase)  # (N, S, S)
        tint = rng.uniform(0, 1, size=(n, 3, 1, 1)).astype(np.float32)
        out += stripes * tint * wave[:, None].astype(np.float32)
    return out


def draw(rng: np.random.Generator, colour: np.ndarray, shape: np.ndarray, cx: np.ndarray, cy: np.ndarray,
         r: np.ndarray, angle: np.ndarray, size: int, stripes: float = 0.0, noise: float = 0.05,
         lift: float = 0.0) -> np.ndarray:
    """Render N shapes (colour ids into ``COLOURS``) -> (N, 3, S, S) float32 in [0, 1]."""
    n = len(shape)
    palette = np.asarray(list(COLOURS.values()), dtype=np.float32)
    rgb = np.clip(palette[colour] + rng.normal(0, 0.04, size=(n, 3)), 0, 1).astype(np.float32)
    mask = shape_masks(shape, cx, cy, r, angle, size)[:, None]
    img = background(rng, n, size, stripes, lift) * (1 - mask) + rgb[:, :, None, None] * mask
    img += rng.normal(0, noise, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def normalise(images: np.ndarray):
    """[0, 1] numpy pixels -> float32 torch tensor, roughly zero-mean unit-variance."""
    import torch

    return (torch.from_numpy(np.ascontiguousarray(images)) - 0.4) / 0.3
