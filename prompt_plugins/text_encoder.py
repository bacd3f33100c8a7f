"""Run a CLIP text tower on prompt embeddings, through the backend's decomposed blocks.

Sequences are cut after the last EOT of the batch: the causal mask means no token before
an EOT ever attends to what follows it, so the cut is exact and saves most of the work
(77 -> ~20 tokens for short class names).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint

from .backends.base import Backend, BlockParts
from .tokenization import ClassTokens


def attention(q: Tensor, k: Tensor, v: Tensor, n_heads: int, causal: bool = True) -> Tensor:
    """Multi-head scaled dot-product attention. q: (N, Lq, D), k/v: (N, Lk, D) -> (N, Lq, D)."""
    n, lq, d = q.shape
    lk = k.shape[1]
    hd = d // n_heads
    q = q.view(n, lq, n_heads, hd).transpose(1, 2)
    k = k.view(k.shape[0], lk, n_heads, hd).transpose(1, 2)
    v = v.view(v.shape[0], lk, n_heads, hd).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return o.transpose(1, 2).reshape(n, lq, d)


def run_block(parts: BlockParts, x: Tensor) -> Tensor:
    """One causal pre-LN block on (N, L, D)."""
    q, k, v = parts.qkv(parts.ln_1(x))
    x = x + parts.ls_1(parts.out(attention(q, k, v, parts.n_heads)))
    return x + parts.ls_2(parts.mlp(parts.ln_2(x)))


def insert_slots(x: Tensor, prompt: Tensor, start: int = 1) -> Tensor:
    """Replace positions ``start .. start+n`` of (N, L, D) ``x`` with ``prompt`` (n, D) or (N, n, D).

    Builds a new tensor (autograd-safe); the prompt is broadcast, never repeated.
    """
    n = prompt.shape[-2]
    prompt = prompt.to(x.dtype)
    if prompt.dim() == 2:
        prompt = prompt.expand(x.shape[0], -1, -1)
    return torch.cat([x[:, :start], prompt, x[:, start + n:]], dim=1)


def encode_tokens(
    backend: Backend,
    tokens: ClassTokens,
    classes: Tensor | None = None,
    ctx: Tensor | None = None,
    deep: Sequence[Tensor] | Tensor | None = None,
    *,
    grad_checkpointing: bool = False,
) -> Tensor:
    """Text features (C', E), unnormalised, for the classes ``classes`` (default: all).

    ctx: (n_ctx, Dt) shared or (C, n_ctx, Dt) class-specific context (C = all classes).
    deep: per-layer prompts for layers 1 .. len(deep), each (n_ctx, Dt), replacing the
    context positions before that block (IVLP/MaPLe style).
    """
    ids, eot = tokens.ids, tokens.eot
    if classes is not None:
        ids, eot = ids[classes], eot[classes]
        if ctx is not None and ctx.dim() == 3:
            ctx = ctx[classes]
    device = backend.device
    ids, eot = ids.to(device), eot.to(device)
    length = int(eot.max()) + 1
    x = backend.embed_tokens(ids[:, :length])
    if ctx is not None:
        x = insert_slots(x, ctx)
    x = x + backend.positional_embedding[:length].to(x.dtype)
    n_deep = 0 if deep is None else len(deep)
    for i in range(backend.text_layers):
        if 1 <= i <= n_deep:
            x = insert_slots(x, deep[i - 1])
        parts = backend.text_block(i)
        if grad_checkpointing and torch.is_grad_enabled():
            x = _checkpoint(run_block, parts, x, use_reentrant=False)
        else:
            x = run_block(parts, x)
    pooled = x[torch.arange(x.shape[0], device=device), eot]
    return backend.text_head(pooled)
