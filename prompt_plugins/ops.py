"""Prompt-token ops for the visual tower, fused for many frames, each with a plain reference.

All ops take and return token sequences in the layout the hooked module sees:
``NLD`` (batch, tokens, width) or ``LND`` (tokens, batch, width). Prompts enter as stride-0
``expand`` views written into one output buffer per op (a single ``cat``), never repeated per
frame; deep replacement writes in place when autograd does not track the activations. The references
(``*_reference``) use the repeat + cat formulation of the method repos and exist for
tests and benchmarks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ShapeError

__all__ = [
    "append_prompt_tokens", "append_prompt_tokens_reference",
    "replace_prompt_tokens", "replace_prompt_tokens_reference",
    "pool_frames", "pool_frames_reference", "video_logits", "video_logits_reference",
]


def _check_temporal(prompts: Tensor, temporal: Tensor, n_seq: int) -> int:
    """Number of videos in ``n_seq`` sequences (video-major, B·T) for (T, n, D) offsets."""
    frames = temporal.shape[0]
    if n_seq % frames:
        raise ShapeError(f"{n_seq} sequences are not a whole number of videos of T={frames} frames")
    if temporal.shape[1:] != prompts.shape:
        raise ShapeError(f"temporal offsets {tuple(temporal.shape)} do not match prompts {tuple(prompts.shape)} per frame")
    return n_seq // frames


def append_prompt_tokens(x: Tensor, prompts: Tensor, temporal: Tensor | None = None, layout: str = "NLD") -> Tensor:
    """Append ``prompts`` (n, D) to every sequence of ``x``; with ``temporal`` (T, n, D), frame t of
    each video gets ``prompts + temporal[t]`` (sequences are ordered video-major, B·T).

    One output buffer, filled by a single ``cat`` whose prompt operand is a stride-0 ``expand``
    view (never materialised per frame); with temporal offsets the cat runs on a (B, T, L, D)
    view so the (T, n, D) rows broadcast over videos. Backward: a narrow of the output gradient
    and a sum over the broadcast dims, no clone of the activation-sized gradient.
    """
    p = prompts.to(x.dtype)
    if layout == "NLD":
        n_seq, length, d = x.shape
        if temporal is None:
            return torch.cat([x, p.expand(n_seq, *p.shape)], dim=1)
        n_vid = _check_temporal(p, temporal, n_seq)
        rows = p + temporal.to(x.dtype)  # (T, n, D): tiny
        frames = rows.shape[0]
        out = torch.cat([x.reshape(n_vid, frames, length, d), rows.expand(n_vid, *rows.shape)], dim=2)
        return out.view(n_seq, length + p.shape[0], d)
    length, n_seq, d = x.shape
    if temporal is None:
        return torch.cat([x, p.unsqueeze(1).expand(p.shape[0], n_seq, d)], dim=0)
    n_vid = _check_temporal(p, temporal, n_seq)
    rows = (p + temporal.to(x.dtype)).transpose(0, 1)  # (n, T, D)
    frames = rows.shape[1]
    out = torch.cat([x.reshape(length, n_vid, frames, d), rows.unsqueeze(1).expand(-1, n_vid, -1, -1)], dim=0)
    return out.view(length + p.shape[0], n_seq, d)


def append_prompt_tokens_reference(x: Tensor, prompts: Tensor, temporal: Tensor | None = None,
                                   layout: str = "NLD") -> Tensor:
    """repeat + cat formulation (what MaPLe / ViFi-CLIP do)."""
    if layout == "LND":
        return append_prompt_tokens_reference(x.transpose(0, 1), prompts, temporal).transpose(0, 1)
    n_seq = x.shape[0]
    p = prompts.to(x.dtype)
    if temporal is None:
        rep = p.unsqueeze(0).repeat(n_seq, 1, 1)
    else:
        frames = temporal.shape[0]
        rep = (p.unsqueeze(0) + temporal.to(x.dtype)).repeat(n_seq // frames, 1, 1)
    return torch.cat([x, rep], dim=1)


def replace_prompt_tokens(x: Tensor, prompts: Tensor, layout: str = "NLD", inplace: bool | None = None) -> Tensor:
    """Replace the last n tokens of every sequence with ``prompts`` (n, D) (deep prompts).

    ``inplace=None`` (default) writes into ``x`` itself when autograd does not track it (inference,
    ``no_grad``/``inference_mode`` or frozen inputs): no second activation-sized buffer. Under
    autograd one new buffer is filled by a ``cat`` of ``x``'s kept tokens and a stride-0
    ``expand`` of the prompts (the gradient flows back as views and one sum).
    """
    n = prompts.shape[0]
    p = prompts.to(x.dtype)
    if inplace is None:
        inplace = not (torch.is_grad_enabled() and (x.requires_grad or p.requires_grad))
    if layout == "NLD":
        if inplace:
            x[:, -n:] = p
            return x
        return torch.cat([x[:, :-n], p.expand(x.shape[0], n, x.shape[2])], dim=1)
    if inplace:
        x[-n:] = p.unsqueeze(1)
        return x
    return torch.cat([x[:-n], p.unsqueeze(1).expand(n, x.shape[1], x.shape[2])], dim=0)


def replace_prompt_tokens_reference(x: Tensor, prompts: Tensor, layout: str = "NLD") -> Tensor:
    if layout == "LND":
        return replace_prompt_tokens_reference(x.transpose(0, 1), prompts).transpose(0, 1)
    n = prompts.shape[0]
    return torch.cat([x[:, :-n], prompts.to(x.dtype).unsqueeze(0).repeat(x.shape[0], 1, 1)], dim=1)


def pool_frames(frame_features: Tensor, frames: int, normalize: bool = True) -> Tensor:
    """(B·T, E) per-frame features -> (B, E): mean over T, then L2-normalise (ViFi/GA2 order, spec T5).

    A reshape (a view) and one reduction; normalising before the mean is the common mistake
    this order avoids.
    """
    if frame_features.dim() != 2 or frame_features.shape[0] % frames:
        raise ShapeError(f"frame features {tuple(frame_features.shape)} are not (B*T, E) for T={frames}")
    pooled = frame_features.view(-1, frames, frame_features.shape[-1]).mean(dim=1)
    return F.normalize(pooled, dim=-1) if normalize else pooled


def pool_frames_reference(frame_features: Tensor, frames: int) -> Tensor:
    """Plain loop over videos (the reference for ``pool_frames``)."""
    out = []
    for i in range(0, frame_features.shape[0], frames):
        v = frame_features[i:i + frames].sum(dim=0) / frames
        out.append(v / v.norm())
    return torch.stack(out)


def video_logits(frame_features: Tensor, text_features: Tensor, frames: int, scale: Tensor | float = 1.0) -> Tensor:
    """(B·T, E) frame features and (C, E) normalised text features -> (B, C) ``scale · v̂ t̂ᵀ``.

    Pools with ``pool_frames`` then one matmul (``einsum('be,ce->bc')``); no per-frame logits
    are materialised.
    """
    return scale * torch.einsum("be,ce->bc", pool_frames(frame_features, frames), text_features)


def video_logits_reference(frame_features: Tensor, text_features: Tensor, frames: int,
                           scale: Tensor | float = 1.0) -> Tensor:
    return scale * pool_frames_reference(frame_features, frames) @ text_features.t()
