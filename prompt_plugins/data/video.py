"""Videos as ViFi-CLIP reads them: T frames sampled per clip (mmaction ``SampleFrames(clip_len=1, num_clips=T)``),
the same spatial transform for every frame, ImageNet normalisation.

Sampling. Train: segments of ``N // T`` frames, a random offset in each (fewer frames than T: sorted random
picks or evenly rounded). Test: the centre of each of T equal segments, ``int(i N / T + N / 2T)``.
Spatial. Test: shorter side to ``size * 256 / 224`` -> centre crop ``size``. Train: the same resize ->
mmaction ``MultiScaleCrop`` (scales 1, .875, .75, .66 of the shorter side, width/height scales at most one
step apart, one of 5 fixed positions) -> resize to ``size`` -> flip with p = 0.5 -> grayscale with p = 0.2.
ViFi's per-frame colour jitter (p = 0.8) is not applied. Decoding: a folder of frames (sorted image files)
needs nothing; a video file needs PyAV (``pip install 'prompt-plugins[video]'``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .splits import IMAGE_EXTS, VIDEO_EXTS
from .transforms import IMAGENET_MEAN, IMAGENET_STD, bicubic, center_crop, open_image, resize_shorter, to_tensor

SCALES = (1.0, 0.875, 0.75, 0.66)


def train_frame_indices(n: int, t: int, rng: random.Random) -> list[int]:
    avg = n // t
    if avg > 0:
        return [i * avg + rng.randrange(avg) for i in range(t)]
    if n > t:
        return sorted(rng.randrange(n) for _ in range(t))
    return [int(round(i * n / t)) % n for i in range(t)]


def eval_frame_indices(n: int, t: int) -> list[int]:
    avg = n / t
    return [int(i * avg + avg / 2.0) % n for i in range(t)]


def resolve_video(path: str) -> Path:
    """A video file, or the folder of frames named like it without its extension."""
    p = Path(path)
    if p.is_dir() or p.is_file():
        return p
    if p.suffix.lower() in VIDEO_EXTS and p.with_suffix("").is_dir():
        return p.with_suffix("")
    raise ConfigError(f"video {path!r} does not exist (nor a frame folder {str(p.with_suffix(''))!r}); check --root")


def frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise ConfigError(f"video frame folder {str(folder)!r} holds no images")
    return files


def decode_frames(path: Path, pick: Any) -> list[Any]:
    """PIL frames of ``path`` at the indices ``pick(n_frames)`` returns (a folder or a decoded file)."""
    if path.is_dir():
        files = frame_files(path)
        return [open_image(str(files[i])) for i in pick(len(files))]
    try:
        import av
    except ImportError:
        raise ConfigError(f"cannot decode video {str(path)!r}: PyAV is not installed; pip install "
                          "'prompt-plugins[video]' (PyAV), or extract the frames into a folder per video") from None
    try:  # count the frames (the header's count when it has one), then decode keeping only the picked ones
        with av.open(str(path)) as container:
            n = container.streams.video[0].frames or sum(1 for _ in container.decode(video=0))
        if n < 1:
            raise ConfigError(f"video {str(path)!r} has no frames")
        wanted = pick(n)
        kept: dict[int, Any] = {}
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in set(wanted):
                    kept[i] = frame.to_image()
                if i >= max(wanted):
                    break
    except ConfigError:
        raise
    except Exception as exc:  # PyAV raises its own error types
        raise ConfigError(f"cannot decode video {str(path)!r} ({type(exc).__name__}: {exc}); replace the file "
                          "or extract its frames into a folder") from None
    last = max(kept) if kept else None
    if last is None:
        raise ConfigError(f"video {str(path)!r} has no decodable frames")
    return [kept.get(i, kept[last]) for i in wanted]  # a header count can exceed the decodable frames


def multiscale_box(w: int, h: int, size: int, rng: random.Random) -> tuple[int, int, int, int]:
    """mmaction ``MultiScaleCrop`` (random_crop=False, max_wh_scale_gap=1, 5 fixed crops): left, top, w, h."""
    base = min(w, h)
    sizes = [int(base * s) for s in SCALES]
    pairs = [(sizes[j], sizes[i]) for i in range(len(sizes)) for j in range(len(sizes)) if abs(i - j) <= 1]
    cw, ch = pairs[rng.randrange(len(pairs))]
    ws, hs = (w - cw) // 4, (h - ch) // 4
    left, top = [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)][rng.randrange(5)]
    return left, top, max(1, cw), max(1, ch)


@dataclass(frozen=True)
class VideoTransform:
    """``transform(path, rng) -> (T, 3, size, size)`` (see the module docstring)."""

    size: int
    frames: int
    train: bool
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __call__(self, path: str, rng: random.Random | None = None) -> Tensor:
        rng = rng if rng is not None else random.Random(0)
        t = self.frames
        pick = (lambda n: train_frame_indices(n, t, rng)) if self.train else (lambda n: eval_frame_indices(n, t))
        frames = decode_frames(resolve_video(path), pick)
        short = int(round(self.size * 256 / 224))
        frames = [resize_shorter(f, short) for f in frames]
        if not self.train:
            return torch.stack([to_tensor(center_crop(f, self.size), self.mean, self.std) for f in frames])
        left, top, cw, ch = multiscale_box(*frames[0].size, self.size, rng)
        flip, gray = rng.random() < 0.5, rng.random() < 0.2
        out = []
        for f in frames:
            f = f.resize((self.size, self.size), bicubic(), box=(left, top, left + cw, top + ch))
            if flip:
                from PIL import Image

                f = f.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if gray:
                f = f.convert("L").convert("RGB")
            out.append(to_tensor(f, self.mean, self.std))
        return torch.stack(out)
