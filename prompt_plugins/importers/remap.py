"""Helpers of the key remaps: ``module.`` stripping, per-layer stacking, what a file says of its backbone,
and the report of the keys an importer did not map."""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import Tensor

from ..errors import CheckpointError


def strip_module(state: Mapping[str, Any]) -> dict[str, Tensor]:
    """The tensors of ``state`` with DDP's ``module.`` prefix removed."""
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items() if isinstance(v, Tensor)}


def stack_layers(state: Mapping[str, Tensor], pattern: str, used: set[str]) -> Tensor | None:
    """Stack ``pattern.format(i)`` for i = 1, 2, ... into (D-1, n, W); gaps are an error."""
    regex = re.compile(re.escape(pattern).replace(r"\{\}", r"(\d+)") + "$")
    found = {int(m.group(1)): k for k in state if (m := regex.match(k))}
    if not found:
        return None
    layers = sorted(found)
    if layers != list(range(1, len(layers) + 1)):
        raise CheckpointError(f"per-layer prompts {pattern.format('i')} exist for layers {layers}; expected 1..{len(layers)}"
                              " without gaps")
    used.update(found.values())
    return torch.stack([state[found[i]].float() for i in layers])


def backbone_fingerprint(state: Mapping[str, Tensor], text_width: int, vision_width: int | None) -> dict[str, Any]:
    """The shape facts a ViFi/GA2-style file reveals (only those it has): checked by ``from_pretrained``."""
    fp: dict[str, Any] = {"backend": "openai", "text_width": text_width}
    if vision_width:
        fp["vision_width"] = vision_width
    for tower, key in (("text_encoder", "text_layers"), ("image_encoder", "vision_layers")):
        layers = {int(m.group(1)) for k in state if (m := re.match(rf"{tower}\.transformer\.resblocks\.(\d+)\.attn\.", k))}
        if layers:
            fp[key] = max(layers) + 1
    if "text_encoder.positional_embedding" in state:
        fp["context_length"] = state["text_encoder.positional_embedding"].shape[0]
    if "text_encoder.text_projection" in state:
        fp["embed_dim"] = state["text_encoder.text_projection"].shape[1]
    return fp


def split_report(state: Mapping[str, Tensor], used: set[str], dropped: set[str]) -> dict[str, Any]:
    """Classify the keys not mapped: class buffers (dropped), backbone weights (skipped), other prompt keys (unexpected)."""
    rest = [k for k in state if k not in used and k not in dropped]
    unexpected = sorted(k for k in rest if "VPT" in k or k.startswith("prompt_learner."))
    return {"dropped": sorted(dropped), "unexpected": unexpected, "skipped_backbone": len(rest) - len(unexpected)}
