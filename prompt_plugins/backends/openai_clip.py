"""Backend for OpenAI's ``clip.model.CLIP`` (ViT visual tower; transformer blocks run LND).

Never imports ``clip`` to drive a model: the user's model object is enough (``import_clip`` is for the modules
that build one). The default tokenizer is the
``clip`` package's ``simple_tokenizer.py`` loaded as a standalone module (it needs only
ftfy and regex), so torchvision is not imported; open_clip's identical tokenizer is the
fallback.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UnsupportedModelError
from .base import Backend, ResidualCLIP, Tokenizer


def import_clip() -> Any:
    """The ``clip`` package (for the modules that build or load OpenAI CLIP models), imported without the
    deprecation warning its ``from pkg_resources import packaging`` prints (three lines on every command); any other
    warning, from clip or elsewhere, still shows. ``ImportError`` when it is not installed."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=DeprecationWarning)
        import clip
    return clip


@lru_cache(maxsize=1)
def _openai_simple_tokenizer() -> Any:
    spec = importlib.util.find_spec("clip")
    if spec is not None and spec.submodule_search_locations:
        import os

        for location in spec.submodule_search_locations:
            path = os.path.join(location, "simple_tokenizer.py")
            if os.path.isfile(path):
                module_spec = importlib.util.spec_from_file_location("_prompt_plugins_clip_bpe", path)
                module = importlib.util.module_from_spec(module_spec)
                module_spec.loader.exec_module(module)
                return module.SimpleTokenizer()
    try:
        from open_clip.tokenizer import SimpleTokenizer  # same BPE vocabulary
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UnsupportedModelError(
            "no CLIP tokenizer found: install the 'openai' extra (pip install 'prompt-plugins[openai]') "
            "or pass tokenizer=... to wrap()"
        ) from exc
    return SimpleTokenizer()


def bpe_tokenizer(simple_tokenizer: Any) -> Tokenizer:
    """Adapt an OpenAI/open_clip ``SimpleTokenizer`` instance."""
    if hasattr(simple_tokenizer, "sot_token_id"):  # open_clip
        sos, eot = simple_tokenizer.sot_token_id, simple_tokenizer.eot_token_id
    else:  # OpenAI clip
        sos, eot = simple_tokenizer.encoder["<|startoftext|>"], simple_tokenizer.encoder["<|endoftext|>"]
    return Tokenizer(encode=simple_tokenizer.encode, sos_id=sos, eot_id=eot, pad_id=0, decode=simple_tokenizer.decode)


class OpenAIClipBackend(ResidualCLIP, Backend):
    name = "openai"
    library = "clip (OpenAI)"
    vision_layout = "LND"
    plain_blocks = ("ResidualAttentionBlock",)
    default_block_layout = "LND"

    @classmethod
    def matches(cls, model: Any) -> bool:
        return (
            isinstance(model, nn.Module)
            and all(hasattr(model, a) for a in ("token_embedding", "positional_embedding", "ln_final", "visual"))
            and hasattr(getattr(model, "transformer", None), "resblocks")
            and not hasattr(model, "text_pool_type")  # open_clip's CLIP has it
            and "open_clip" not in type(model).__module__
        )

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self._text = model
        self._blocks = list(model.transformer.resblocks)
        self.text_width = model.ln_final.weight.shape[0]
        self.text_layers = len(self._blocks)
        self.context_length = model.positional_embedding.shape[0]
        self.embed_dim = model.text_projection.shape[1]
        visual = model.visual
        self._is_vit = hasattr(visual, "class_embedding") and hasattr(visual, "transformer")
        if self._is_vit:
            self.vision_width = visual.conv1.weight.shape[0]
            self.vision_layers = len(visual.transformer.resblocks)
        else:  # ModifiedResNet: usable for text prompts only
            self.vision_width = 0
            self.vision_layers = 0
        self.image_size = int(getattr(visual, "input_resolution", 224))

    @property
    def dtype(self) -> torch.dtype:
        return self.model.visual.conv1.weight.dtype

    def default_tokenizer(self) -> Tokenizer:
        return bpe_tokenizer(_openai_simple_tokenizer())

    def text_head(self, pooled: Tensor) -> Tensor:
        return self.model.ln_final(pooled).type(self.dtype) @ self.model.text_projection

    # visual tower
    def check_visual_prompts(self) -> None:
        if not self._is_vit:
            raise UnsupportedModelError(
                f"visual prompts need a ViT visual tower; this OpenAI CLIP has a "
                f"{type(self.model.visual).__name__} (ResNet) visual tower. Use text prompts only "
                f"(n_visual_ctx=0) or a ViT model."
            )
