"""Backend for open_clip's ``CLIP`` and ``CustomTextCLIP`` (built-in text transformer).

Blocks run NLD when ``transformer.batch_first`` (the default since 2.26), LND before.
Imports nothing from open_clip at import time except the tokenizer, lazily.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UnsupportedModelError
from .base import Backend, ResidualCLIP, Tokenizer
from .openai_clip import bpe_tokenizer


def _text_tower(model: nn.Module) -> nn.Module:
    """The module holding token_embedding / transformer / ln_final / text_projection."""
    return model if hasattr(model, "token_embedding") else getattr(model, "text", model)


class OpenClipBackend(ResidualCLIP, Backend):
    name = "open_clip"
    library = "open_clip"
    plain_blocks = ("ResidualAttentionBlock", "CustomResidualAttentionBlock")

    @classmethod
    def matches(cls, model: Any) -> bool:
        if "open_clip" not in type(model).__module__ or not hasattr(model, "visual"):
            return False
        return True  # unsupported towers raise a clear error in __init__

    def __init__(self, model: nn.Module):
        super().__init__(model)
        text = _text_tower(model)
        if not (hasattr(text, "token_embedding") and hasattr(getattr(text, "transformer", None), "resblocks")):
            raise UnsupportedModelError(
                f"open_clip {type(model).__name__} with text tower {type(text).__name__} is not supported: "
                "prompt-plugins drives the built-in TextTransformer (not HF text towers)"
            )
        pool = getattr(text, "pool_type", None) or getattr(model, "text_pool_type", "argmax")
        if pool not in ("argmax", "eos") or getattr(text, "cls_emb", None) is not None:
            raise UnsupportedModelError(
                f"open_clip text pooling {pool!r} is not supported: prompts need EOT pooling ('argmax' or 'eos')"
            )
        self._text = text
        self._blocks = list(text.transformer.resblocks)
        for block in self._blocks:
            if not isinstance(getattr(block, "attn", None), nn.MultiheadAttention):
                raise UnsupportedModelError(
                    f"open_clip text block {type(block).__name__} is not supported "
                    "(expected ResidualAttentionBlock with nn.MultiheadAttention)"
                )
        self.text_width = text.ln_final.weight.shape[0]
        self.text_layers = len(self._blocks)
        self.context_length = text.positional_embedding.shape[0]
        proj = text.text_projection
        self.embed_dim = proj.out_features if isinstance(proj, nn.Linear) else (
            proj.shape[1] if proj is not None else self.text_width)
        visual = model.visual
        self._is_vit = hasattr(visual, "class_embedding") and hasattr(getattr(visual, "transformer", None), "resblocks")
        self.vision_width = visual.class_embedding.shape[-1] if self._is_vit else 0
        self.vision_layers = len(visual.transformer.resblocks) if self._is_vit else 0
        size = getattr(visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        if self._is_vit:
            self.vision_layout = "NLD" if getattr(visual.transformer, "batch_first", True) else "LND"

    @property
    def dtype(self) -> torch.dtype:
        return self._text.transformer.get_cast_dtype()

    def default_tokenizer(self) -> Tokenizer:
        from open_clip.tokenizer import SimpleTokenizer

        return bpe_tokenizer(SimpleTokenizer())

    def text_head(self, pooled: Tensor) -> Tensor:
        x = self._text.ln_final(pooled)
        proj = self._text.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj

    def check_visual_prompts(self) -> None:
        visual = self.model.visual
        if not self._is_vit:
            raise UnsupportedModelError(
                f"visual prompts need a ViT visual tower; this open_clip model has {type(visual).__name__}"
            )
        if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
            raise UnsupportedModelError(
                "visual prompts need class-token pooling; this open_clip visual tower pools with "
                f"{'an attentional pooler' if getattr(visual, 'attn_pool', None) is not None else repr(visual.pool_type)}, "
                "which would pool the prompt tokens too"
            )
