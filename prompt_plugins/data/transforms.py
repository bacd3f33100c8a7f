"""Image transforms of the recipes, on PIL images with a caller-given ``random.Random`` (no torchvision needed).

Train (CoOp/Dassl ``["random_resized_crop", "random_flip", "normalize"]``): RandomResizedCrop(size, scale
(0.08, 1), ratio (3/4, 4/3), bicubic) -> horizontal flip with p = 0.5 -> tensor -> normalise. Test: resize the
shorter side to ``size`` (bicubic) -> centre crop -> tensor -> normalise. The crop follows torchvision's
algorithm (10 tries, then a centre crop clamped to the ratio range); the random numbers come from
``random.Random``, so a crop is reproducible from its seed but not equal to torchvision's for the same seed.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: ViFi-CLIP normalises video frames with ImageNet statistics (mmaction ``img_norm_cfg``)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def bicubic() -> Any:
    from PIL import Image

    return Image.Resampling.BICUBIC


def to_tensor(img: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """PIL image -> (3, H, W) float32, normalised."""
    img = img.convert("RGB")
    w, h = img.size
    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(h, w, 3).permute(2, 0, 1)
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    return (data.float() / 255 - m) / s


def resize_shorter(img: Any, size: int) -> Any:
    """Shorter side to ``size`` (torchvision ``Resize(int)``: the longer side is truncated)."""
    w, h = img.size
    if min(w, h) == size:
        return img
    if w <= h:
        return img.resize((size, int(size * h / w)), bicubic())
    return img.resize((int(size * w / h), size), bicubic())


def center_crop(img: Any, size: int) -> Any:
    w, h = img.size
    if w < size or h < size:  # torchvision pads; a resized image is never smaller
        img = img.resize((max(w, size), max(h, size)), bicubic())
        w, h = img.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def crop_box(w: int, h: int, rng: random.Random, scale: tuple[float, float] = (0.08, 1.0),
             ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box (left, top, width, height)."""
    area = w * h
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        cw, ch = int(round(h * ratio[1])), h
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


@dataclass(frozen=True)
class ImageTransform:
    """``transform(img, rng) -> (3, size, size)``: the recipes' train augmentation (``train=True``) or the
    test-time resize + centre crop; ``rng`` is used by the train one only."""

    size: int
    train: bool
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD
    scale: tuple[float, float] = (0.08, 1.0)

    def __call__(self, img: Any, rng: random.Random | None = None) -> Tensor:
        img = img.convert("RGB")
        if self.train:
            rng = rng if rng is not None else random.Random(0)
            left, top, cw, ch = crop_box(*img.size, rng, self.scale)
            img = img.resize((self.size, self.size), bicubic(), box=(left, top, left + cw, top + ch))
            if rng.random() < 0.5:
                from PIL import Image

                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            img = center_crop(resize_shorter(img, self.size), self.size)
        return to_tensor(img, self.mean, self.std)


def open_image(path: str) -> Any:
    """The image at ``path`` (loaded), or a ``ConfigError`` naming it."""
    from PIL import Image, UnidentifiedImageError

    from ..errors import ConfigError

    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ConfigError(f"cannot read image {path!r} ({type(exc).__name__}: {exc}); remove or replace the "
                          "file") from None
