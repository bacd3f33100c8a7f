"""Prompt-learning forks' transformer blocks, as small test-time subclasses of OpenAI's / open_clip's real
``ResidualAttentionBlock`` that reproduce the behaviour the plain-CLIP check must decide, written for these
tests (no fork's code): the fork's class name with its prompts switched off (ViFi-CLIP's fine-tuning
configurations), a ``VPT_shallow`` prompt that replaces tokens (IVLP / ViFi-CLIP prompting), and MaPLe's
list input ``[x, compound_prompts, counter]``. ``into_fork`` turns a tiny model's existing blocks into one of
these in place (``__class__`` swap), so the weights stay the library's random ones."""
from __future__ import annotations

import functools

import torch
from torch import nn


def _openai_block():
    from clip.model import ResidualAttentionBlock

    return ResidualAttentionBlock


def prompt_free(name: str = "ResidualAttentionBlock_ViFi_CLIP", base: type | None = None) -> type:
    """The fork's class with prompts off: the forward is the plain one; ``add_prompt`` records the config."""
    base = base or _openai_block()
    return type(name, (base,), {"calls": 0, "forward": _counting(base.forward)})


def _counting(forward):
    @functools.wraps(forward)  # keeps the signature (open_clip's forward takes attn_mask=)
    def wrapped(self, *args, **kwargs):
        type(self).calls += 1
        return forward(self, *args, **kwargs)

    return wrapped


def injecting(name: str = "ResidualAttentionBlock_IVLP") -> type:
    """IVLP / ViFi-CLIP prompting: the block's own ``VPT_shallow`` (n, D) replaces tokens of its LND input
    before the plain computation: rows 1..n in a text layer, the last n rows in a visual layer."""
    base = _openai_block()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        if self.add_prompt:
            ctx = self.VPT_shallow.to(x.dtype)[:, None, :].expand(-1, x.shape[1], -1)
            n = ctx.shape[0]
            x = torch.cat([x[:1], ctx, x[1 + n:]]) if self.text_layer else torch.cat([x[:-n], ctx])
        return base.forward(self, x)

    return type(name, (base,), {"calls": 0, "forward": forward})


def maple_like(name: str = "ResidualAttentionBlock_MaPLe") -> type:
    """MaPLe: the forward takes and returns ``[x, compound_prompts, counter]`` and swaps in
    ``compound_prompts[counter]`` after the first layer."""
    base = _openai_block()

    def forward(self, inputs):
        x, prompts, counter = inputs
        if not self.first_layer and counter < len(prompts):
            ctx = prompts[counter].to(x.dtype)[:, None, :].expand(-1, x.shape[1], -1)
            x = torch.cat([x[:1], ctx, x[1 + ctx.shape[0]:]])
            counter += 1
        return [base.forward(self, x), prompts, counter]

    return type(name, (base,), {"forward": forward, "marks_first_layer": True})


def into_fork(blocks, cls: type, *, text_layer: bool, n_ctx: int = 0, prompt_from: int = 1,
              prompt_until: int = 0, seed: int = 3) -> None:
    """Make ``blocks`` (a tower's resblocks) instances of ``cls`` the way a fork's ``Transformer`` builds
    them: flags ``text_layer`` and ``add_prompt`` (MaPLe: ``first_layer``); blocks ``prompt_from <= i <
    prompt_until`` get a ``VPT_shallow`` parameter of ``n_ctx`` tokens (std 0.02, in the block's dtype)."""
    g = torch.Generator().manual_seed(seed)
    for i, block in enumerate(blocks):
        block.__class__ = cls
        block.text_layer = text_layer
        if getattr(cls, "marks_first_layer", False):
            block.first_layer = i == 0
        block.add_prompt = prompt_from <= i < prompt_until and n_ctx > 0
        if block.add_prompt:
            width = block.ln_1.weight.shape[0]
            dtype = block.attn.in_proj_weight.dtype
            block.VPT_shallow = nn.Parameter((0.02 * torch.randn(n_ctx, width, generator=g)).to(dtype))
