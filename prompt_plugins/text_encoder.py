"""Run a CLIP text tower on prompt embeddings, through the backend's decomposed blocks.

Two savings, both exact under the causal mask:

* **EOT cut.** Sequences stop after the last EOT of the batch: no token before an EOT ever
  attends to what follows it (77 -> ~20 tokens for short class names).
* **Shared prefix.** A class prompt is ``[SOS] ctx_1..ctx_n <name> [EOT]``; with class-agnostic
  context the first ``P >= 1 + n`` tokens (and, for zero-shot templates, any template words
  before the name) are identical for every class, so their activations are too. They are
  computed once per layer as one sequence per prompt set; each class runs only its suffix,
  attending to ``[prefix keys/values (one copy, broadcast over classes), own keys/values]``
  with a causal mask. The last block runs the EOT rows only.

Several prompt sets (different context tensors, different class selections) share one pass
through the tower (:func:`encode_tokens_multi`). Where no prefix is shared (class-specific
context (C, n, D), or a template that starts with the class name and no context) the plain
EOT-cut path runs instead, automatically. :func:`encode_tokens_reference` is the CoOp-style
full-length (77-token) formulation, kept for tests and benchmarks.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint

from .backends.base import Backend
from .errors import ShapeError
from .text_blocks import attention, insert_slots, run_block, shared_block
from .tokenization import ClassTokens

__all__ = ["PromptSet", "encode_tokens", "encode_tokens_multi", "encode_tokens_reference", "attention", "run_block",
           "insert_slots", "shared_prefix_length"]

Deep = Sequence[Tensor] | Tensor | None


class PromptSet(NamedTuple):
    """One request of :func:`encode_tokens_multi`: the classes (indices; None: all) to encode
    with context ``ctx`` ((n, Dt) shared, (C, n, Dt) class-specific, or None: the token
    embeddings of the template) and per-layer ``deep`` prompts (each (n, Dt))."""

    classes: Tensor | None = None
    ctx: Tensor | None = None
    deep: Deep = None


# ---------------------------------------------------------------------------------------- helpers
def _as_set(item: Any) -> PromptSet:
    """Accept ``PromptSet``, ``(classes, ctx, deep)`` or ``(classes, prompts)`` with a ``Prompts``-like
    object (``.text``, ``.text_deep``) or None."""
    if isinstance(item, PromptSet):
        return item
    item = tuple(item)
    if len(item) == 2:
        classes, p = item
        if p is None:
            return PromptSet(classes)
        if isinstance(p, Tensor):
            return PromptSet(classes, p)
        return PromptSet(classes, getattr(p, "text", None), getattr(p, "text_deep", None))
    if len(item) == 3:
        return PromptSet(*item)
    raise ShapeError(f"a prompt set is (classes, prompts) or (classes, ctx, deep); got {len(item)} items")


def _indices(classes: Tensor | None, n: int) -> Tensor:
    if classes is None:
        return torch.arange(n)
    return torch.as_tensor(classes, dtype=torch.long).flatten().cpu()


def shared_prefix_length(ids: Tensor, eot: Tensor, n_ctx: int, ctxs: Sequence[Tensor | None],
                         deeps: Sequence[Deep] = ()) -> int:
    """Length P of the prefix every row shares (0: none worth sharing; use the plain path).

    ids: (N, L) token ids of the selected rows; eot: (N,). P is the longest common prefix of
    the rows, capped so every row keeps at least its EOT in the suffix. Class-specific context
    shares nothing; prompts in the slots need P >= 1 + n_ctx.
    """
    if any(c is not None and c.dim() != 2 for c in ctxs):
        return 0
    same = (ids == ids[:1]).all(dim=0)
    p = int(same.long().cumprod(0).sum())
    p = min(p, int(eot.min()))
    prompted = any(c is not None for c in ctxs) or any(d is not None and len(d) > 0 for d in deeps)
    if prompted and p < 1 + n_ctx:
        return 0
    return p if p >= 2 else 0


def _deep_list(deep: Deep) -> Sequence[Tensor]:
    return () if deep is None else deep


# ---------------------------------------------------------------------------------------- paths
def _encode_shared(backend: Backend, tokens: ClassTokens, sets: list[PromptSet], idx: list[Tensor],
                   ids: Tensor, eot: Tensor, p: int, grad_checkpointing: bool) -> Tensor:
    device = backend.device
    g = len(sets)
    counts = torch.tensor([len(i) for i in idx])
    length = int(eot.max()) + 1
    pos = backend.positional_embedding
    xs = backend.embed_tokens(ids[:, p:length].to(device))
    xs = xs + pos[p:length].to(xs.dtype)
    base = backend.embed_tokens(ids[:1, :p].to(device))
    xp = torch.cat([base if s.ctx is None else insert_slots(base, s.ctx) for s in sets], dim=0)
    xp = xp + pos[:p].to(xp.dtype)
    qpos_all = torch.arange(length - p, device=device).expand(ids.shape[0], -1)
    qpos_last = (eot - p).to(device)[:, None]
    own = None
    if g > 1:
        grp = torch.repeat_interleave(torch.arange(g), counts).to(device)
        own = grp[:, None] == torch.arange(g, device=device).repeat_interleave(p)[None, :]
    deeps = [_deep_list(s.deep) for s in sets]
    n = tokens.n_ctx
    for i in range(backend.text_layers):
        if i >= 1 and any(i <= len(d) for d in deeps):
            mids = [d[i - 1].to(xp.dtype)[None] if i <= len(d) else xp[j:j + 1, 1:1 + n] for j, d in enumerate(deeps)]
            xp = torch.cat([xp[:, :1], torch.cat(mids, dim=0), xp[:, 1 + n:]], dim=1)
        last = i == backend.text_layers - 1
        qpos = qpos_last if last else qpos_all
        parts = backend.text_block(i)
        if grad_checkpointing and torch.is_grad_enabled():
            xp, xs = _checkpoint(shared_block, parts, xp, xs, qpos, own, last, use_reentrant=False)
        else:
            xp, xs = shared_block(parts, xp, xs, qpos, own, last)
    return backend.text_head(xs[:, 0])


def _encode_plain(backend: Backend, tokens: ClassTokens, idx: Tensor, ctx: Tensor | None, deep: Deep,
                  grad_checkpointing: bool) -> Tensor:
    """The EOT-cut path: every class runs its whole (cut) sequence."""
    ids, eot = tokens.ids[idx], tokens.eot[idx]
    if ctx is not None and ctx.dim() == 3:
        ctx = ctx[idx.to(ctx.device)]
    device = backend.device
    eot = eot.to(device)
    length = int(eot.max()) + 1
    x = backend.embed_tokens(ids[:, :length].to(device))
    if ctx is not None:
        x = insert_slots(x, ctx)
    x = x + backend.positional_embedding[:length].to(x.dtype)
    deep = _deep_list(deep)
    for i in range(backend.text_layers):
        if 1 <= i <= len(deep):
            x = insert_slots(x, deep[i - 1])
        parts = backend.text_block(i)
        if grad_checkpointing and torch.is_grad_enabled():
            x = _checkpoint(run_block, parts, x, use_reentrant=False)
        else:
            x = run_block(parts, x)
    pooled = x[torch.arange(x.shape[0], device=device), eot]
    return backend.text_head(pooled)


def encode_tokens_multi(backend: Backend, tokens: ClassTokens, sets: Sequence[Any], *,
                        grad_checkpointing: bool = False, share_prefix: bool = True) -> list[Tensor]:
    """Text features for several prompt sets in one pass: a list of (C_g, E), unnormalised.

    Each set is a :class:`PromptSet`, ``(classes, ctx, deep)`` or ``(classes, prompts)`` (a
    ``Prompts``: its ``text`` and ``text_deep`` are used). All sets use ``tokens``. With a shared
    prefix, all sets run through the tower together (one prefix sequence per set); otherwise each
    set runs the plain EOT-cut path on its own. ``share_prefix=False`` forces the plain path
    (for comparisons).
    """
    sets = [_as_set(s) for s in sets]
    if not sets:
        return []
    c = tokens.ids.shape[0]
    idx = [_indices(s.classes, c) for s in sets]
    for s in sets:
        if s.ctx is not None and s.ctx.dim() == 3 and s.ctx.shape[0] != c:
            raise ShapeError(f"class-specific context has {s.ctx.shape[0]} classes, the tokens {c}")
    if any(len(i) == 0 for i in idx):
        raise ShapeError("empty class selection: pass at least one class per prompt set")
    all_idx = torch.cat(idx)
    ids, eot = tokens.ids[all_idx], tokens.eot[all_idx]
    p = shared_prefix_length(ids, eot, tokens.n_ctx, [s.ctx for s in sets], [s.deep for s in sets]) \
        if share_prefix else 0
    if p == 0:
        return [_encode_plain(backend, tokens, i, s.ctx, s.deep, grad_checkpointing) for i, s in zip(idx, sets)]
    feats = _encode_shared(backend, tokens, sets, idx, ids, eot, p, grad_checkpointing)
    return list(feats.split([len(i) for i in idx], dim=0))


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
    return encode_tokens_multi(backend, tokens, [PromptSet(classes, ctx, deep)],
                               grad_checkpointing=grad_checkpointing)[0]


def encode_tokens_reference(backend: Backend, tokens: ClassTokens, classes: Tensor | None = None,
                            ctx: Tensor | None = None, deep: Deep = None) -> Tensor:
    """CoOp-style reference: full ``context_length`` sequences per class (prefix + context +
    suffix), causal blocks, EOT row gathered. Slow; for tests and benchmarks. -> (C', E)."""
    idx = _indices(classes, tokens.ids.shape[0])
    ids, eot = tokens.ids[idx], tokens.eot[idx]
    if ctx is not None and ctx.dim() == 3:
        ctx = ctx[idx.to(ctx.device)]
    device = backend.device
    x = backend.embed_tokens(ids.to(device))
    if ctx is not None:
        x = insert_slots(x, ctx)
    x = x + backend.positional_embedding.to(x.dtype)
    deep = _deep_list(deep)
    for i in range(backend.text_layers):
        if 1 <= i <= len(deep):
            x = insert_slots(x, deep[i - 1])
        x = run_block(backend.text_block(i), x)
    return backend.text_head(x[torch.arange(x.shape[0], device=device), eot.to(device)])
