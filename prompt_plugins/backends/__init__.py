"""Backends: one small adapter per CLIP implementation; ``resolve(model)`` picks one by duck typing."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import UnsupportedModelError
from .base import Backend, BlockParts, Tokenizer
from .hf_clip import HFClipBackend
from .open_clip import OpenClipBackend
from .openai_clip import OpenAIClipBackend
from .plain import check_plain_clip

__all__ = ["Backend", "BlockParts", "Tokenizer", "resolve", "register_backend", "BACKENDS"]

#: tried in order; the first whose ``matches`` is true wins. The backend modules import nothing from
#: their library at import time (duck typing), so all are registered here, once.
BACKENDS: list[type[Backend]] = [OpenAIClipBackend, OpenClipBackend, HFClipBackend]


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Add a backend class (usable as a decorator). Later registrations are tried first."""
    BACKENDS.insert(0, cls)
    return cls


def resolve(model: Any) -> Backend:
    """Return the backend that drives ``model``, or raise ``UnsupportedModelError`` naming what was found."""
    if isinstance(model, Backend):
        return model
    if isinstance(model, torch.jit.ScriptModule):
        raise UnsupportedModelError(
            f"got a TorchScript module ({type(model).__name__}); hooks cannot attach to it. "
            "Load the model eagerly: clip.load(name, jit=False)"
        )
    if not isinstance(model, nn.Module):
        raise UnsupportedModelError(
            f"expected a CLIP model (an nn.Module from clip, open_clip or transformers), got {type(model).__name__}"
        )
    for cls in BACKENDS:
        if cls.matches(model):
            _check_materialised(model)
            check_plain_clip(model, cls)  # may run a block once: after the meta check
            return cls(model)
    names = ", ".join(name for name, _ in list(model.named_children())[:8])
    message = (f"no backend recognises {type(model).__module__}.{type(model).__name__} (children: {names}). "
               "Supported: OpenAI clip.model.CLIP, open_clip CLIP/CustomTextCLIP, transformers CLIPModel")
    inner = _inner_clip(model)
    if inner is not None:
        access = f"model.{inner}" if all(p.isidentifier() for p in inner.split(".")) else \
            f"model.get_submodule({inner!r})"
        message += (f"; it contains a CLIP model at {inner!r} ({type(model.get_submodule(inner)).__name__}): "
                    f"wrap that: pp.wrap({access}, ...)")
    raise UnsupportedModelError(message)


def _check_materialised(model: nn.Module) -> None:
    """Refuse a model whose weights are on the meta device (shapes only, no values)."""
    meta = next((name for name, p in model.named_parameters() if p.is_meta), None)
    if meta is not None:
        raise UnsupportedModelError(
            f"the model's weights are on the meta device (shapes without values), e.g. {meta!r}: prompts on it "
            "could not compute anything. Load the weights first: model.to_empty(device='cpu') and "
            "model.load_state_dict(state), or build the model with its library's loader")


def _inner_clip(model: nn.Module) -> str | None:
    """Path of the first submodule of ``model`` that a backend recognises (e.g. ViFi-CLIP's ``clip_model``)."""
    for name, sub in model.named_modules():
        if name and any(cls.matches(sub) for cls in BACKENDS):
            return name
    return None
