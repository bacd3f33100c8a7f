"""The released visual-prompt placement (spec backbones.md §0), written out per library from its own modules: visual
tokens appended after the positional embedding, before ``ln_pre``; before visual block i (1 .. len(deep)) the last n
tokens replaced by ``deep[i-1]``; the class token pooled, ``ln_post`` and the projection."""
from __future__ import annotations

import torch
from torch import Tensor


def reference_image_features(backend: str, model, x: Tensor, visual: Tensor, deep: Tensor | None) -> Tensor:
    """(B, E) unnormalised image features of ``model`` with ``visual`` (n, Dv) and ``deep`` (J-1, n, Dv) prompts."""
    n, b = visual.shape[0], x.shape[0]
    deep = [] if deep is None else list(deep)

    def replace(h: Tensor, i: int) -> Tensor:  # h: (B, L, D)
        return torch.cat([h[:, :-n], deep[i - 1].expand(b, -1, -1).to(h.dtype)], dim=1) if 1 <= i <= len(deep) else h

    if backend == "hf":
        vm = model.vision_model
        h = vm.embeddings(x)
        h = vm.pre_layrnorm(torch.cat([h, visual.expand(b, -1, -1).to(h.dtype)], dim=1))
        for i, layer in enumerate(vm.encoder.layers):
            out = layer(replace(h, i), None)
            h = out[0] if isinstance(out, tuple) else out
        return model.visual_projection(vm.post_layernorm(h[:, 0]))
    v = model.visual
    h = v.conv1(x.to(v.conv1.weight.dtype)).flatten(2).permute(0, 2, 1)
    cls = v.class_embedding.to(h.dtype) + torch.zeros(b, 1, h.shape[-1], dtype=h.dtype)
    h = torch.cat([cls, h], dim=1) + v.positional_embedding.to(h.dtype)
    h = v.ln_pre(torch.cat([h, visual.expand(b, -1, -1).to(h.dtype)], dim=1))
    nld = backend == "open_clip" and getattr(v.transformer, "batch_first", True)
    for i, block in enumerate(v.transformer.resblocks):
        h = replace(h, i)
        h = block(h) if nld else block(h.transpose(0, 1)).transpose(0, 1)
    return v.ln_post(h[:, 0]) @ v.proj
