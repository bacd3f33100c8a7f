"""What ``PromptedCLIP.encode_text_multi`` runs: several (classes, prompts) requests through the text tower in at
most two passes (requests that need gradients, then the others without a graph), served from the class-feature
cache where they cannot need gradients, or from the prompts' own ``class_features`` (PromptKD's stored teacher
features) without running the tower at all."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from .precision import at_least_fp32
from .prompts.base import Prompts
from .text_encoder import PromptSet, encode_tokens_multi


def prompt_state(prompted: Any, prompts: Prompts | None) -> list[Tensor]:
    """The tensors a request's features depend on (the cache key): the prompt module's parameters and buffers,
    or the given prompts' text tensors."""
    if prompts is None:
        return [*prompted.prompt.parameters(), *prompted.prompt.buffers()]
    return [t for t in (prompts.text, prompts.text_deep) if t is not None]


def _stored_features(prompted: Any, idx: Tensor | None, prompts: Prompts | None) -> Tensor | None:
    """Rows of the prompts' ``class_features`` for ``idx``, or None when the class prompts must be encoded."""
    if prompts is None:
        if not getattr(prompted.prompt, "provides_class_features", False):
            return None
        prompts = prompted.prompt()
    feats = prompts.class_features
    if feats is None:
        return None
    return at_least_fp32(feats if idx is None else feats[idx.to(feats.device)])


def encode_requests(prompted: Any, requests: Sequence[tuple[Any, Prompts | None]]) -> list[Tensor]:
    """Unnormalised (C_i, E) features per request (see ``PromptedCLIP.encode_text_multi``)."""
    out: list[Tensor | None] = [None] * len(requests)
    todo: list[tuple[int, PromptSet, tuple | None, list, bool]] = []
    enabled = prompted._enabled
    for r, (classes, prompts) in enumerate(requests):
        idx = prompted.class_indices(classes)
        if enabled:
            stored = _stored_features(prompted, idx, prompts)
            if stored is not None:
                out[r] = stored
                continue
        tensors, pset = ([], PromptSet(idx)) if not enabled else (prompt_state(prompted, prompts), None)
        needs_grad = torch.is_grad_enabled() and (
            any(t.requires_grad for t in tensors) or any(w.requires_grad for w in prompted.model.parameters()))
        cache = prompted._text_cache
        key, refs = (None, []) if needs_grad else cache.key(
            size=prompted.text_cache_size, enabled=enabled, tokens=prompted.tokens, idx=idx,
            given=prompts is not None, tensors=tensors, backend=prompted.backend)
        cached = cache.get(key)
        if cached is not None:
            out[r] = cached
            continue
        if pset is None:  # prompts computed lazily only on a miss (a coupler's dropout draws from the RNG)
            p = prompted.prompt() if prompts is None else prompts
            p = p.rounded(getattr(prompted, "entering_dtype", None))
            pset = PromptSet(idx, p.text, p.text_deep)
        todo.append((r, pset, key, refs, needs_grad))
    tokens = prompted.tokens if enabled else prompted.zero_shot_tokens
    for group in ([t for t in todo if t[4]], [t for t in todo if not t[4]]):
        if not group:
            continue
        with torch.set_grad_enabled(group[0][4]):
            feats = encode_tokens_multi(prompted.backend, tokens, [t[1] for t in group],
                                        grad_checkpointing=prompted.grad_checkpointing)
        for (r, _, key, refs, _), f in zip(group, feats):
            f = at_least_fp32(f)
            out[r] = f
            if key is not None:
                prompted._text_cache.put(key, f, refs, prompted.text_cache_size)
    return out  # type: ignore[return-value]
