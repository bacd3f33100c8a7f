"""Does a transformer block compute the plain CLIP block? One run on a random input, compared with the plain
pre-LN computation that the block's own weights define (``residual_block_parts`` + ``run_block``).

A prompt-learning fork's block that injects prompts (IVLP / ViFi-CLIP ``VPT_shallow`` tokens replacing rows)
gives other values; MaPLe's block (input ``[x, compound_prompts, counter]``) raises or returns a list. A fork
whose prompts its config switched off (ViFi-CLIP's fine-tuning configurations) computes the plain block.

The probe leaves the block as it found it: no autograd graph, autocast off, the training flags and every
attribute the forward reassigned (e.g. ``attn_mask`` cast to the input dtype) put back, the global RNG
untouched (a local generator), no hook added; the block's own forward hooks are not run (``block.forward``).
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor, nn

from ..errors import UnsupportedModelError
from .base import Layout, residual_block_parts, run_block


@dataclass(frozen=True)
class BlockSite:
    """How a block is called in its tower: token ``layout``, ``causal`` attention (text tower) or not
    (visual tower), and the tower's sequence ``length`` (a text block may hold a mask of that size)."""

    layout: Layout
    causal: bool
    length: int


class Verdict(Enum):
    PLAIN = "plain"  # computes the plain block
    DIFFERENT = "different"  # other values, other inputs (an exception) or another output type or shape
    UNKNOWN = "unknown"  # the plain computation cannot run in the block's dtype, even as a float32 copy


#: largest allowed |block - plain| over max(1, |plain|); an injected prompt token changes its rows by O(1)
TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 6e-2}
DEFAULT_TOLERANCE = 1e-4
PROBE_BATCH = 2  # two sequences: a block reading the layout the wrong way round differs


def probe_block(block: nn.Module, site: BlockSite) -> Verdict:
    """Run ``block`` once at ``site`` on a seeded random input; compare with the plain block of its weights.

    A block whose plain computation cannot run in its dtype on its device is probed as a float32 copy;
    ``UNKNOWN`` only if that cannot run either."""
    verdict = _probe(block, site)
    if verdict is not Verdict.UNKNOWN:
        return verdict
    try:
        twin = copy.deepcopy(block).float().cpu()
    except Exception:  # a block that cannot be copied keeps UNKNOWN
        return verdict
    return _probe(twin, site)


def _probe(block: nn.Module, site: BlockSite) -> Verdict:
    try:
        parts = residual_block_parts(block)
    except (AttributeError, UnsupportedModelError):
        return Verdict.DIFFERENT  # no ln_1 / MultiheadAttention attn / mlp / ln_2: not a CLIP block
    weight = block.attn.in_proj_weight
    g = torch.Generator().manual_seed(0)
    x = torch.randn(PROBE_BATCH, site.length, block.attn.embed_dim, generator=g).to(weight.device, weight.dtype)
    saved = _SavedState(block)
    try:
        with torch.no_grad(), torch.autocast(weight.device.type, enabled=False):
            block.eval()
            try:
                expected = run_block(parts, x, causal=site.causal)
            except RuntimeError:
                return Verdict.UNKNOWN
            if not torch.isfinite(expected).all():
                return Verdict.UNKNOWN
            args, kwargs = _call(block, x, site)
            try:
                out = block.forward(*args, **kwargs)
            except Exception:  # any failure of a foreign forward (e.g. MaPLe's list input): not the plain block
                return Verdict.DIFFERENT
    finally:
        saved.restore()
    if not isinstance(out, Tensor) or out.shape != args[0].shape:
        return Verdict.DIFFERENT
    if site.layout == "LND":
        out = out.transpose(0, 1)
    tol = TOLERANCE.get(weight.dtype, DEFAULT_TOLERANCE)
    expected = expected.float()
    err = (out.float() - expected).abs().max()
    return Verdict.PLAIN if bool(err <= tol * expected.abs().max().clamp_min(1.0)) else Verdict.DIFFERENT


def _call(block: nn.Module, x: Tensor, site: BlockSite) -> tuple[tuple, dict]:
    """Arguments for ``block.forward``: ``x`` in the site's layout, and for a causal tower the additive
    causal mask as ``attn_mask=`` when the block holds none but its forward takes one (open_clip style)."""
    args = (x.transpose(0, 1).contiguous() if site.layout == "LND" else x,)
    if not site.causal or getattr(block, "attn_mask", None) is not None:
        return args, {}
    try:
        takes_mask = "attn_mask" in inspect.signature(block.forward).parameters
    except (TypeError, ValueError):
        takes_mask = False
    if not takes_mask:
        return args, {}
    mask = torch.full((site.length, site.length), float("-inf"), device=x.device).triu_(1).to(x.dtype)
    return args, {"attn_mask": mask}


class _SavedState:
    """Every submodule's attributes (and its parameter / buffer / child tables) as they were, put back by
    ``restore`` (by identity: tensors the forward reassigned go back to the original objects)."""

    TABLES = ("_parameters", "_buffers", "_modules")

    def __init__(self, block: nn.Module):
        self.saved = [(m, dict(vars(m)), {t: dict(getattr(m, t)) for t in self.TABLES}) for m in block.modules()]

    def restore(self) -> None:
        for module, attrs, tables in self.saved:
            now = vars(module)
            for key in [k for k in now if k not in attrs]:
                del now[key]
            now.update(attrs)
            for name, table in tables.items():
                current = getattr(module, name)
                current.clear()
                current.update(table)
