"""Backend for Hugging Face ``transformers.CLIPModel`` (always NLD).

``CLIPTextTransformer`` accepts no ``inputs_embeds``, so the text tower is driven block by
block through the backend; the visual tower keeps running the library's own forward with
hooks on ``pre_layrnorm`` and the encoder layers.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UnsupportedModelError
from .base import Backend, BlockParts, Tokenizer, linear_out


class HFClipBackend(Backend):
    name = "hf"
    library = "transformers"

    @classmethod
    def matches(cls, model: Any) -> bool:
        return (
            hasattr(model, "text_model") and hasattr(model, "vision_model")
            and hasattr(model, "text_projection") and hasattr(model, "visual_projection")
            and hasattr(getattr(model.text_model, "embeddings", None), "token_embedding")
        )

    def __init__(self, model: nn.Module):
        super().__init__(model)
        tm, vm = model.text_model, model.vision_model
        self._tm = tm
        self._blocks = list(tm.encoder.layers)
        self.text_width = tm.final_layer_norm.weight.shape[0]
        self.text_layers = len(self._blocks)
        self.context_length = tm.embeddings.position_embedding.weight.shape[0]
        self.embed_dim = model.text_projection.out_features
        self.vision_width = vm.pre_layrnorm.weight.shape[0]
        self.vision_layers = len(vm.encoder.layers)
        self.image_size = int(model.config.vision_config.image_size)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.text_projection.weight.dtype

    def default_tokenizer(self) -> Tokenizer:
        cfg = self.model.config.text_config
        if cfg.vocab_size != 49408:
            raise UnsupportedModelError(
                f"this CLIPModel has vocab_size {cfg.vocab_size}; pass its tokenizer: wrap(..., tokenizer=CLIPTokenizer(...))"
            )
        from .openai_clip import _openai_simple_tokenizer, bpe_tokenizer

        bpe = bpe_tokenizer(_openai_simple_tokenizer())
        pad = cfg.pad_token_id if cfg.pad_token_id is not None else bpe.eot_id
        return Tokenizer(encode=bpe.encode, sos_id=bpe.sos_id, eot_id=bpe.eot_id, pad_id=pad, decode=bpe.decode)

    def embed_tokens(self, ids: Tensor) -> Tensor:
        return self._tm.embeddings.token_embedding(ids).to(self.dtype)

    def vocabulary(self) -> Tensor:
        return self._tm.embeddings.token_embedding.weight

    @property
    def positional_embedding(self) -> Tensor:
        return self._tm.embeddings.position_embedding.weight

    def text_block(self, i: int) -> BlockParts:
        layer = self._blocks[i]
        attn = layer.self_attn

        def qkv(h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            return attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)

        return BlockParts(
            ln_1=layer.layer_norm1, qkv=qkv, out=linear_out(attn.out_proj), ln_2=layer.layer_norm2,
            mlp=layer.mlp, n_heads=attn.num_heads,
        )

    def text_head(self, pooled: Tensor) -> Tensor:
        return self.model.text_projection(self._tm.final_layer_norm(pooled))

    def vision_entry(self) -> nn.Module:
        return self.model.vision_model.pre_layrnorm

    def vision_blocks(self) -> list[nn.Module]:
        return list(self.model.vision_model.encoder.layers)

    def encode_image(self, images: Tensor) -> Tensor:
        out = self.model.get_image_features(pixel_values=images)
        return out if isinstance(out, Tensor) else out.pooler_output

    @property
    def logit_scale(self) -> Tensor:
        return self.model.logit_scale
