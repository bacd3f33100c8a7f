"""Text blocks run on (N, L, D) sequences through a backend's ``BlockParts``: plain causal attention, and
the shared-prefix form where each class's suffix attends to [prefix keys/values, own keys/values]. The plain
block (``attention``, ``run_block``) lives with ``BlockParts`` in ``backends/base.py``, which also uses it to
check a fork's blocks.

Both are exact under the causal mask; see ``text_encoder`` for how sequences are cut and prefixes shared.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .backends.base import BlockParts, attention, run_block
from .precision import at_least_fp32

__all__ = ["attention", "run_block", "insert_slots", "suffix_attention", "prefix_kv", "shared_block"]


def insert_slots(x: Tensor, prompt: Tensor, start: int = 1) -> Tensor:
    """Replace positions ``start .. start+n`` of (N, L, D) ``x`` with ``prompt`` (n, D) or (N, n, D).

    Builds a new tensor (autograd-safe); the prompt is broadcast, never repeated.
    """
    n = prompt.shape[-2]
    prompt = prompt.to(x.dtype)
    if prompt.dim() == 2:
        prompt = prompt.expand(x.shape[0], -1, -1)
    return torch.cat([x[:, :start], prompt, x[:, start + n:]], dim=1)


def suffix_attention(q: Tensor, k: Tensor, v: Tensor, kp: Tensor, vp: Tensor, qpos: Tensor,
                      own: Tensor | None, n_heads: int) -> Tensor:
    """Attention of suffix queries over [shared prefix, own suffix].

    q: (N, Lq, D) queries at suffix positions ``qpos`` (N, Lq); k/v: (N, S, D) suffix keys/values;
    kp/vp: (G, P, D) prefix keys/values, one sequence per prompt set (never copied per class);
    own: (N, G*P) bool, which prefix rows each class may see (None when G == 1). -> (N, Lq, D).
    """
    n, lq, d = q.shape
    s, hd = k.shape[1], d // n_heads
    gp = kp.shape[0] * kp.shape[1]
    q = q.reshape(n, lq, n_heads, hd) * hd ** -0.5
    # prefix scores as one (H, N*Lq, hd) x (H, hd, G*P) product
    qh = q.permute(2, 0, 1, 3).reshape(n_heads, n * lq, hd)
    sp = torch.bmm(qh, kp.reshape(gp, n_heads, hd).permute(1, 2, 0)).view(n_heads, n, lq, gp).permute(1, 0, 2, 3)
    if own is not None:
        sp = sp.masked_fill(~own[:, None, None, :], float("-inf"))
    kh = k.reshape(n, s, n_heads, hd).permute(0, 2, 3, 1)  # (N, H, hd, S)
    ss = torch.matmul(q.transpose(1, 2), kh)  # (N, H, Lq, S)
    visible = torch.arange(s, device=q.device)[None, None, :] <= qpos[:, :, None]  # (N, Lq, S)
    ss = ss.masked_fill(~visible[:, None], float("-inf"))
    probs = at_least_fp32(torch.cat([sp, ss.to(sp.dtype)], dim=-1)).softmax(dim=-1).to(v.dtype)
    pp, ps = probs.split([gp, s], dim=-1)
    op = torch.bmm(pp.permute(1, 0, 2, 3).reshape(n_heads, n * lq, gp),
                   vp.reshape(gp, n_heads, hd).transpose(0, 1).to(v.dtype))
    op = op.view(n_heads, n, lq, hd).permute(1, 2, 0, 3)
    os_ = torch.matmul(ps, v.reshape(n, s, n_heads, hd).transpose(1, 2)).transpose(1, 2)
    return (op + os_).reshape(n, lq, d)


def prefix_kv(parts: BlockParts, xp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return parts.qkv(parts.ln_1(xp))


def shared_block(parts: BlockParts, xp: Tensor, xs: Tensor, qpos: Tensor, own: Tensor | None,
                  last: bool) -> tuple[Tensor, Tensor]:
    """One block on the shared prefix xp (G, P, D) and class suffixes xs (N, S, D).

    With ``last``, only the rows at ``qpos`` (N, 1) are computed and returned as xs (N, 1, D);
    the prefix is not advanced (nothing reads it after the last block).
    """
    qp, kp, vp = prefix_kv(parts, xp)
    qs, ks, vs = parts.qkv(parts.ln_1(xs))
    if last:
        rows = qpos[:, :, None].expand(-1, -1, xs.shape[-1])
        xs, qs = xs.gather(1, rows), qs.gather(1, rows)
    else:
        xp = xp + parts.ls_1(parts.out(attention(qp, kp, vp, parts.n_heads)))
        xp = xp + parts.ls_2(parts.mlp(parts.ln_2(xp)))
    xs = xs + parts.ls_1(parts.out(suffix_attention(qs, ks, vs, kp, vp, qpos, own, parts.n_heads)))
    xs = xs + parts.ls_2(parts.mlp(parts.ln_2(xs)))
    return xp, xs
