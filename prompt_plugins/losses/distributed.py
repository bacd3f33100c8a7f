"""DDP helpers every loss can share: rank sizes, gathering rows with gradients, unwrapping DDP."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def dist_ready() -> bool:
    """True inside an initialised process group of more than one rank."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


def rank_sizes(n: int, device: torch.device | str = "cpu") -> list[int]:
    """Every rank's ``n`` (rank order); ``[n]`` without an initialised process group."""
    if not dist_ready():
        return [n]
    import torch.distributed as dist

    t = torch.tensor([n], device=device)
    sizes = [torch.zeros_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, t)
    return [int(s) for s in sizes]


def gather_rows(x: Tensor, *, with_grad: bool = True, sizes: list[int] | None = None) -> Tensor:
    """Concatenate the rows of ``x`` (N_r, ...) from every rank (N_r may differ), rank order.
    Gradients flow back to each rank's rows (``torch.distributed.nn.functional.all_gather``).
    ``sizes``: every rank's N_r when already known (``rank_sizes``), saving one collective.
    Without an initialised process group (or with one rank) ``x`` is returned as is."""
    if not dist_ready():
        return x
    import torch.distributed as dist

    if sizes is None:
        sizes = rank_sizes(x.shape[0], x.device)
    pad = max(sizes) - x.shape[0]
    padded = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))]) if pad else x
    if with_grad:
        from torch.distributed.nn.functional import all_gather

        parts = all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def unwrap_parallel(model: Any) -> Any:
    """The module inside ``DistributedDataParallel`` / ``DataParallel``, else ``model``."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model
