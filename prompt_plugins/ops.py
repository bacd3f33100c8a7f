"""Prompt-token ops for the visual tower, fused for many frames, each with a plain reference.

All ops take and return token sequences in the layout the hooked module sees:
``NLD`` (batch, tokens, width) or ``LND`` (tokens, batch, width). Prompts are broadcast
into a single pre-allocated output, never repeated per frame; the references
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


def _prompt_rows(prompts: Tensor, temporal: Tensor | None, n_seq: int) -> tuple[Tensor, int]:
    """Return prompts shaped to broadcast over (B, T, n, D), and B."""
    if temporal is None:
        return prompts, n_seq
    frames = temporal.shape[0]
    if n_seq % frames:
        raise ShapeError(f"{n_seq} sequences are not a whole number of videos of T={frames} frames")
    if temporal.shape[1:] != prompts.shape:
        raise ShapeError(f"temporal offsets {tuple(temporal.shape)} do not match prompts {tuple(prompts.shape)} per frame")
    return prompts + temporal, n_seq // frames  # (T, n, D)


def append_prompt_tokens(x: Tensor, prompts: Tensor, temporal: Tensor | None = None, layout: str = "NLD") -> Tensor:
    """Append ``prompts`` (n, D) to every sequence of ``x``; with ``temporal`` (T, n, D), frame t of
    each video gets ``prompts + temporal[t]`` (sequences are ordered video-major, B·T)."""
    seq_dim = 1 if layout == "NLD" else 0
    n_seq = x.shape[1 - seq_dim]
    rows, n_vid = _prompt_rows(prompts.to(x.dtype), None if temporal is None else temporal.to(x.dtype), n_seq)
    length, n, d = x.shape[seq_dim], prompts.shape[0], x.shape[-1]
    if layout == "NLD":
        out = x.new_empty(n_seq, length + n, d)
        out[:, :length] = x
        tail = out[:, length:]
        if temporal is None:
            tail.copy_(rows.expand(n_seq, n, d))
        else:
            tail.view(n_vid, -1, n, d).copy_(rows.expand(n_vid, *rows.shape))
    else:
        out = x.new_empty(length + n, n_seq, d)
        out[:length] = x
        tail = out[length:]
        if temporal is None:
            tail.copy_(rows.unsqueeze(1).expand(n, n_seq, d))
        else:
            tail.view(n, n_vid, -1, d).copy_(rows.permute(1, 0, 2).unsqueeze(1).expand(n, n_vid, *rows.shape[:1], d))
    return out


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
    ``no_grad``/``inference_mode`` or a frozen input), so no second activation-sized buffer is made;
    under autograd a single new buffer is filled (the prompts broadcast, never repeated).
    """
    n = prompts.shape[0]
    p = prompts.to(x.dtype)
    if inplace is None:
        inplace = not (torch.is_grad_enabled() and (x.requires_grad or p.requires_grad))
    if inplace:
        out = x
    else:
        out = x.new_empty(x.shape)
        if layout == "NLD":
            out[:, :-n] = x[:, :-n]
        else:
            out[:-n] = x[:-n]
    if layout == "NLD":
        out[:, -n:] = p
    else:
        out[-n:] = p.unsqueeze(1)
    return out


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
