"""Checks of what users feed the prompted model: images and videos. Errors name the shape and the fix.

Videos are (B, T, C, H, W). A 5-D input whose dim 1 is 3 and dim 2 is not reads as (B, C, T, H, W) and is
refused (naming both readings); when both are 3 the layout cannot be told from the shape, so it is refused
unless the caller says which (``layout="BTCHW"`` or ``"BCTHW"``). Float pixels beyond ``PIXEL_BOUND`` look like
0-255 values and are refused unless ``check_range=False``; NaN/inf pixels are always refused.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .config import check_choice
from .errors import ShapeError

#: how 5-D videos are laid out: frames first (the package's own) or channels first (torchvision's video models)
LAYOUTS = ("BTCHW", "BCTHW")
#: normalised CLIP pixels lie in about [-1.8, 2.2]; a float image with a value beyond this is read as 0-255 pixels
PIXEL_BOUND = 20.0
NORMALISE = ("scale to [0, 1] (x / 255) and normalise with the model's mean/std, e.g. CLIP's "
             "(x - mean) / std with mean (0.4815, 0.4578, 0.4082) and std (0.2686, 0.2613, 0.2758), "
             "or use the library's own preprocess")
_NOT_A_TENSOR = {"ndarray": "torch.from_numpy(array)", "list": "torch.stack(list_of_images)",
                 "tuple": "torch.stack(tuple_of_images)"}
_SET_LAYOUT = "or set it once: wrap(..., video_layout=...) or prompted.video_layout = ..."


def _video_layout(images: Tensor, layout: str | None) -> Tensor:
    """(B, T, C, H, W) frames from a 5-D input read with ``layout`` (None: from the shape, refusing a guess)."""
    shape, d1, d2 = tuple(images.shape), images.shape[1], images.shape[2]
    if layout == "BCTHW":
        if d1 != 3:
            raise ShapeError(f"layout='BCTHW' but dim 1 of the videos is {d1}, not 3 channels (shape {shape})")
        return images.transpose(1, 2)
    if layout is None and d1 == 3 and d2 == 3:
        raise ShapeError(
            f"videos of shape {shape} are ambiguous: (B, T, C, H, W) with T=3 frames of 3 channels, or "
            f"(B, C, T, H, W) with 3 channels of T=3 frames. Say which: layout='BTCHW' or layout='BCTHW' "
            f"on this call, {_SET_LAYOUT}")
    if layout is None and d1 == 3:
        raise ShapeError(
            f"videos of shape {shape} look like (B, C, T, H, W) with C=3 channels and T={d2} frames; this model "
            f"reads videos as (B, T, C, H, W), which would mean {d2} channels. Pass "
            f"images.permute(0, 2, 1, 3, 4), or layout='BCTHW' ({_SET_LAYOUT})")
    return images


def _channel_hint(images: Tensor) -> str:
    if images.shape[-1] == 3:
        order = "0, 3, 1, 2" if images.dim() == 4 else "0, 1, 4, 2, 3"
        return f"; the channels look last (channels-last): use images.permute({order})"
    if images.shape[-3] == 1:
        return "; for grayscale images repeat the channel: images.expand(*images.shape[:-3], 3, -1, -1)"
    return "; images are channels-first RGB"


def check_pixel_values(images: Tensor, check_range: bool = True) -> None:
    """Refuse NaN/inf pixels (NaN logits, an arbitrary argmax) and, with ``check_range``, 0-255 float pixels."""
    low, high = torch.stack(images.detach().aminmax()).float().tolist()
    if not (math.isfinite(low) and math.isfinite(high)):
        bad = int((~torch.isfinite(images.detach())).sum())
        raise ShapeError(f"images contain {bad} NaN/inf values (of {images.numel()}): they would give NaN logits "
                         "and an arbitrary argmax; check the decoding and augmentation that produced them")
    if check_range and max(-low, high) > PIXEL_BOUND:
        raise ShapeError(
            f"images have values in [{low:.4g}, {high:.4g}], beyond ±{PIXEL_BOUND:g}: they look like 0-255 pixels, "
            f"not normalised ones (normalised CLIP pixels lie in about [-1.8, 2.2]). Fix: {NORMALISE}. If these "
            "values are intended, pass check_range=False (or set prompted.check_range = False)")


def check_images(images: Tensor, image_size: int, *, layout: str | None = None,
                 check_range: bool = True) -> tuple[int | None, Tensor]:
    """Validate (B, 3, H, W) images or (B, T, 3, H, W) videos for a tower of ``image_size`` (see the module
    docstring for ``layout`` and ``check_range``).

    Returns (T or None, the frames as (B·T, 3, H, W) or the images unchanged)."""
    if not isinstance(images, Tensor):
        kind = type(images).__name__
        fix = _NOT_A_TENSOR.get(kind, "the library's preprocess, then torch.stack" if "Image" in kind else "")
        raise ShapeError(f"images must be a torch.Tensor, got {kind}" + (f"; convert with {fix}" if fix else ""))
    if layout is not None:
        check_choice("layout", layout, LAYOUTS, " (how 5-D videos are laid out)")
    if images.dim() not in (4, 5):
        hint = "; for a single image use images.unsqueeze(0)" if images.dim() == 3 else ""
        raise ShapeError(
            f"expected images (B, 3, H, W) or videos (B, T, 3, H, W), got shape {tuple(images.shape)}{hint}")
    if images.dim() == 5:
        images = _video_layout(images, layout)
    if images.shape[-3] != 3:
        raise ShapeError(f"expected 3 colour channels at dim -3, got {images.shape[-3]} "
                         f"(shape {tuple(images.shape)}){_channel_hint(images)}")
    if tuple(images.shape[-2:]) != (image_size, image_size):
        raise ShapeError(f"expected {image_size}x{image_size} images for this model, got "
                         f"{images.shape[-2]}x{images.shape[-1]} (shape {tuple(images.shape)}); resize first")
    if not images.is_floating_point():
        raise ShapeError(f"images must be floating point (normalised pixels), got {images.dtype}; {NORMALISE}")
    if images.shape[0] == 0:
        raise ShapeError("empty batch: images has B=0")
    if images.dim() == 5 and images.shape[1] == 0:
        raise ShapeError(f"videos have T=0 frames (shape {tuple(images.shape)})")
    check_pixel_values(images, check_range)
    if images.dim() == 4:
        return None, images
    return images.shape[1], images.flatten(0, 1)
