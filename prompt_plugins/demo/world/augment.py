"""Label-preserving views of the world's images and clips: a horizontal flip (every shape is mirror-symmetric
about its vertical axis; a clip's motion may flip, but motion is not part of a class) and a shift of up to
``max_shift`` pixels with the edge pixels repeated. Used alike by every stage that trains, so a later stage
never meets views an earlier one did not."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def augment(x: Tensor, generator: torch.Generator, max_shift: int = 2) -> Tensor:
    """(N, 3, S, S) images or (N, T, 3, S, S) clips -> one random view each (a clip's frames move together)."""
    n, size = x.shape[0], x.shape[-1]
    frames = x if x.dim() == 5 else x[:, None]
    flip = torch.rand(n, generator=generator) < 0.5
    frames = torch.where(flip[:, None, None, None, None], frames.flip(-1), frames)
    if max_shift:
        flat = frames.flatten(1, 2)  # (N, T*3, S, S)
        padded = F.pad(flat, (max_shift,) * 4, mode="replicate")
        dx, dy = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
        flat = torch.stack([p[:, y:y + size, x_:x_ + size] for p, x_, y in zip(padded, dx.tolist(), dy.tolist())])
        frames = flat.view_as(frames)
    return frames if x.dim() == 5 else frames[:, 0]
