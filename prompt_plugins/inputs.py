"""Checks of what users feed the prompted model: images and videos. Errors name the shape and the fix."""
from __future__ import annotations

from torch import Tensor

from .errors import ShapeError


def check_images(images: Tensor, image_size: int) -> tuple[int | None, Tensor]:
    """Validate (B, 3, H, W) images or (B, T, 3, H, W) videos for a tower of ``image_size``.

    Returns (T or None, the frames as (B·T, 3, H, W) or the images unchanged)."""
    if not isinstance(images, Tensor):
        raise ShapeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() not in (4, 5):
        raise ShapeError(
            f"expected images (B, 3, H, W) or videos (B, T, 3, H, W), got shape {tuple(images.shape)}")
    if images.shape[-3] != 3:
        raise ShapeError(f"expected 3 colour channels at dim -3, got {images.shape[-3]} "
                         f"(shape {tuple(images.shape)}); images are channels-first RGB")
    if tuple(images.shape[-2:]) != (image_size, image_size):
        raise ShapeError(f"expected {image_size}x{image_size} images for this model, got "
                         f"{images.shape[-2]}x{images.shape[-1]} (shape {tuple(images.shape)}); resize first")
    if not images.is_floating_point():
        raise ShapeError(f"images must be floating point (normalised pixels), got {images.dtype}")
    if images.shape[0] == 0:
        raise ShapeError("empty batch: images has B=0")
    if images.dim() == 4:
        return None, images
    frames = images.shape[1]
    if frames == 0:
        raise ShapeError(f"videos have T=0 frames (shape {tuple(images.shape)})")
    return frames, images.flatten(0, 1)
