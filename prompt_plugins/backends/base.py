"""The backend interface: "the parts of a CLIP model", answered once per library.

Nothing above this layer knows which CLIP implementation it is talking to. A backend
answers: where the token and positional embeddings are, how to run one text block
(decomposed into its pre-LN parts so the text path can cut sequences and share
prefixes), how to finish the text tower (final norm + projection), where visual prompt
tokens enter the visual tower, how its blocks lay out tokens (LND or NLD), and how to
encode images with the library's own code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

import torch
from torch import Tensor, nn

from ..errors import UnsupportedModelError

Layout = Literal["NLD", "LND"]


def _identity(x: Tensor) -> Tensor:
    return x


@dataclass(frozen=True)
class Tokenizer:
    """Byte-pair encoding without special tokens, plus the ids a CLIP text tower expects.

    ``encode("a photo of a")`` returns the BPE ids of the words only; the prompted text
    encoder adds SOS/EOT/padding itself, so it always knows the slot and EOT positions.
    """

    encode: Callable[[str], list[int]]
    sos_id: int
    eot_id: int
    pad_id: int = 0
    #: ids -> text (None: this tokenizer cannot decode)
    decode: Callable[[list[int]], str] | None = None


@dataclass(frozen=True)
class BlockParts:
    """One pre-LN transformer block, decomposed: ``x + ls_1(out(attn(qkv(ln_1(x)))))`` then
    ``x + ls_2(mlp(ln_2(x)))``. ``qkv`` maps (N, L, D) to three (N, L, D) tensors."""

    ln_1: Callable[[Tensor], Tensor]
    qkv: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]
    out: Callable[[Tensor], Tensor]
    ln_2: Callable[[Tensor], Tensor]
    mlp: Callable[[Tensor], Tensor]
    n_heads: int
    ls_1: Callable[[Tensor], Tensor] = field(default=_identity)
    ls_2: Callable[[Tensor], Tensor] = field(default=_identity)


def attention(q: Tensor, k: Tensor, v: Tensor, n_heads: int, causal: bool = True) -> Tensor:
    """Multi-head scaled dot-product attention. q: (N, Lq, D), k/v: (N, Lk, D) -> (N, Lq, D)."""
    n, lq, d = q.shape
    lk = k.shape[1]
    hd = d // n_heads
    q = q.view(n, lq, n_heads, hd).transpose(1, 2)
    k = k.view(k.shape[0], lk, n_heads, hd).transpose(1, 2)
    v = v.view(v.shape[0], lk, n_heads, hd).transpose(1, 2)
    o = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return o.transpose(1, 2).reshape(n, lq, d)


def run_block(parts: BlockParts, x: Tensor, causal: bool = True) -> Tensor:
    """The plain pre-LN block that ``parts`` define, on (N, L, D): causal (text tower) or not (visual tower)."""
    q, k, v = parts.qkv(parts.ln_1(x))
    x = x + parts.ls_1(parts.out(attention(q, k, v, parts.n_heads, causal)))
    return x + parts.ls_2(parts.mlp(parts.ln_2(x)))


def mha_qkv(attn: nn.MultiheadAttention) -> Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]:
    """q, k, v projections of a self-attention ``nn.MultiheadAttention`` (packed weights)."""
    if not getattr(attn, "_qkv_same_embed_dim", True) or attn.in_proj_weight is None:
        raise UnsupportedModelError(
            "nn.MultiheadAttention with separate k/v dimensions is not a CLIP self-attention block"
        )

    def qkv(h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = nn.functional.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        return q, k, v

    return qkv


def linear_out(layer: nn.Linear) -> Callable[[Tensor], Tensor]:
    return lambda o: nn.functional.linear(o, layer.weight, layer.bias)


class Backend:
    """Base class. Subclasses set ``name`` and implement the abstract members below."""

    name: ClassVar[str] = "base"
    #: the object the library returns from ``pip install``; used in messages only
    library: ClassVar[str] = ""
    #: class names of the library's own ``resblocks`` transformer blocks, accepted without a probe; a block of any
    #: other class there (a prompt library's fork, e.g. ``ResidualAttentionBlock_ViFi_CLIP``) is accepted by
    #: ``resolve`` only if it computes the plain block (``plain.py``). Empty: not checked
    plain_blocks: ClassVar[tuple[str, ...]] = ()
    #: token layout of the library's ``resblocks`` where their ``Transformer`` has no ``batch_first`` flag
    default_block_layout: ClassVar[Layout] = "NLD"

    def __init__(self, model: nn.Module):
        self.model = model

    # ------------------------------------------------------------------ discovery
    @classmethod
    def matches(cls, model: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ shapes
    text_width: int
    text_layers: int
    context_length: int
    vision_width: int
    vision_layers: int
    embed_dim: int

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype of the towers (fp16 for OpenAI ``build_model`` weights)."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return self.positional_embedding.device

    def fingerprint(self) -> dict[str, int | str]:
        """Shape facts a prompt checkpoint depends on. ``backend`` is informative only:
        a checkpoint loads into any backend whose shapes match."""
        return {
            "backend": self.name,
            "text_width": self.text_width,
            "text_layers": self.text_layers,
            "context_length": self.context_length,
            "vision_width": self.vision_width,
            "vision_layers": self.vision_layers,
            "embed_dim": self.embed_dim,
        }

    # ------------------------------------------------------------------ text tower
    def default_tokenizer(self) -> Tokenizer:
        raise NotImplementedError

    def embed_tokens(self, ids: Tensor) -> Tensor:
        """(N, L) ids -> (N, L, Dt) token embeddings in ``self.dtype`` (no positions)."""
        raise NotImplementedError

    def vocabulary(self) -> Tensor:
        """(V, Dt) the token embedding table (to read fixed prompt words back from their embeddings)."""
        raise NotImplementedError

    @property
    def positional_embedding(self) -> Tensor:
        """(context_length, Dt)."""
        raise NotImplementedError

    def text_block(self, i: int) -> BlockParts:
        raise NotImplementedError

    def text_head(self, pooled: Tensor) -> Tensor:
        """(N, Dt) EOT states after the last block -> (N, E) final norm + projection."""
        raise NotImplementedError

    # ------------------------------------------------------------------ visual tower
    image_size: int

    def vision_entry(self) -> nn.Module:
        """Module whose *input* (NLD, positions added) receives appended visual prompt tokens."""
        raise NotImplementedError

    def vision_blocks(self) -> list[nn.Module]:
        raise NotImplementedError

    vision_layout: Layout = "NLD"

    def check_visual_prompts(self) -> None:
        """Raise ``UnsupportedModelError`` if the visual tower cannot take prompt tokens."""

    def encode_image(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, E) with the library's own code path (unnormalised)."""
        raise NotImplementedError

    @property
    def logit_scale(self) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def block_hidden(args: tuple, kwargs: dict) -> tuple[Tensor, Callable[[Tensor], tuple[tuple, dict]]]:
        """Find the hidden-state tensor among a block's call arguments; return it and a
        function that rebuilds (args, kwargs) with a replacement."""
        if args:
            return args[0], lambda x: ((x, *args[1:]), kwargs)
        for key in ("hidden_states", "q_x", "x"):
            if key in kwargs:
                return kwargs[key], lambda x, key=key: (args, {**kwargs, key: x})
        raise UnsupportedModelError("could not find the hidden states among a transformer block's arguments")


def residual_block_parts(b: nn.Module) -> BlockParts:
    """The parts of a ``ResidualAttentionBlock`` (OpenAI CLIP, open_clip, or a fork with the same submodules:
    ``ln_1``, ``attn`` an ``nn.MultiheadAttention``, ``ln_2``, ``mlp``, optional ``ls_1``/``ls_2``)."""
    if not isinstance(getattr(b, "attn", None), nn.MultiheadAttention):
        raise UnsupportedModelError(f"{type(b).__name__} has no nn.MultiheadAttention 'attn'")
    return BlockParts(
        ln_1=b.ln_1, qkv=mha_qkv(b.attn), out=linear_out(b.attn.out_proj), ln_2=b.ln_2, mlp=b.mlp,
        n_heads=b.attn.num_heads, ls_1=getattr(b, "ls_1", _identity), ls_2=getattr(b, "ls_2", _identity),
    )


class ResidualCLIP:
    """What OpenAI CLIP and open_clip's ``CLIP`` share, answered once for both backends: a text tower of
    ``token_embedding``, ``positional_embedding`` and ``ResidualAttentionBlock``s with ``nn.MultiheadAttention``
    (open_clip's built-in ``TextTransformer``), a ViT ``model.visual`` with ``ln_pre`` and
    ``transformer.resblocks``, ``encode_image`` and ``logit_scale``. A backend sets ``_text`` (the module
    holding the text tower) and ``_blocks`` (its blocks) and says in ``check_visual_prompts`` what it refuses."""

    model: nn.Module
    _text: nn.Module
    _blocks: list[nn.Module]
    dtype: torch.dtype

    def check_visual_prompts(self) -> None:  # pragma: no cover - each backend's own
        raise NotImplementedError

    def embed_tokens(self, ids: Tensor) -> Tensor:
        return self._text.token_embedding(ids).to(self.dtype)

    def vocabulary(self) -> Tensor:
        return self._text.token_embedding.weight

    @property
    def positional_embedding(self) -> Tensor:
        return self._text.positional_embedding

    def text_block(self, i: int) -> BlockParts:
        return residual_block_parts(self._blocks[i])

    def vision_entry(self) -> nn.Module:
        self.check_visual_prompts()
        return self.model.visual.ln_pre

    def vision_blocks(self) -> list[nn.Module]:
        self.check_visual_prompts()
        return list(self.model.visual.transformer.resblocks)

    def encode_image(self, images: Tensor) -> Tensor:
        return self.model.encode_image(images)

    @property
    def logit_scale(self) -> Tensor:
        return self.model.logit_scale
