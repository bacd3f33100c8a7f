"""The CLIP backbone inside a fine-tuning checkpoint, as a plain OpenAI CLIP state dict (a pure key remap).

Reads what ``reader.read_checkpoint`` returns for:

* a plain OpenAI CLIP state dict (``visual.*``, ``transformer.*``, ``token_embedding.weight``, ...);
* Text4Vis / GA2-CLIP backbone files (``{"model_state_dict": <CLIP keys>, "fusion_model_state_dict": ...}``, e.g.
  GA2's ``k400-vitb.pt``);
* ViFi-CLIP fine-tuned checkpoints (``{"model": {"module.image_encoder.*", "module.text_encoder.*", ...}}``) and
  GA2-CLIP / ViFi runs (``image_encoder.*`` / ``text_encoder.*`` under ``model_state_dict`` or ``model``).

``module.`` prefixes are stripped; ``image_encoder.`` -> ``visual.``; ``text_encoder.transformer.*`` and the
text tower's embeddings, ``ln_final`` and ``text_projection`` lose their ``text_encoder.`` prefix. Prompt
tensors (``prompt_learner.*``, ``*VPT*``), class buffers and video heads are dropped (reported). ViFi-CLIP does
not save the token embedding (its prompt learner keeps only class embeddings): ``missing`` names it, and
``fill_missing`` takes it from the CLIP the run started from.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..errors import CheckpointError
from .remap import strip_module

#: the text tower's top-level tensors (under ``text_encoder.`` in ViFi/GA2 models)
TEXT_TOP = ("positional_embedding", "text_projection", "token_embedding.", "ln_final.")
#: what a CLIP state dict needs besides the blocks
REQUIRED = ("positional_embedding", "text_projection", "token_embedding.weight", "ln_final.weight", "logit_scale")
CONTAINERS = ("model_state_dict", "model", "state_dict")


def _tensors(obj: Any, source: str) -> dict[str, Tensor]:
    if isinstance(obj, Mapping):
        for key in CONTAINERS:
            if isinstance(obj.get(key), Mapping):
                return strip_module(obj[key])
        tensors = strip_module(obj)
        if tensors:
            return tensors
    raise CheckpointError(f"{source} holds no CLIP weights: expected a state dict, or a dict with one of "
                          f"{list(CONTAINERS)} (ViFi-CLIP, Text4Vis, GA2-CLIP checkpoints)")


def _rename(key: str) -> str | None:
    """The plain CLIP name of ``key``; None for what is not CLIP (prompts, class buffers, heads)."""
    if "VPT" in key or key.startswith(("prompt_learner.", "fusion_model", "video_head", "prompts_")):
        return None
    if key.startswith("clip_model."):
        key = key[len("clip_model."):]
    if key.startswith("image_encoder."):
        return "visual." + key[len("image_encoder."):]
    if key.startswith("text_encoder."):
        rest = key[len("text_encoder."):]
        return rest if rest.startswith("transformer.") or rest.startswith(TEXT_TOP) else None
    if key.startswith(("visual.", "transformer.")) or key.startswith(TEXT_TOP) or key == "logit_scale":
        return key
    return None


def clip_state_dict(obj: Any, source: str = "the checkpoint") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(OpenAI CLIP state dict, report) from a read checkpoint; ``report["missing"]`` lists required keys the
    file lacks (fill them with ``fill_missing``), ``report["dropped"]`` the keys that are not CLIP."""
    state: dict[str, Tensor] = {}
    dropped = []
    for key, value in _tensors(obj, source).items():
        name = _rename(key)
        if name is None:
            dropped.append(key)
        elif name in state:
            raise CheckpointError(f"{source}: two tensors map to the CLIP key {name!r}")
        else:
            state[name] = value.detach().float() if value.is_floating_point() else value.detach()
    if not any(k.startswith("visual.") for k in state) or not any(k.startswith("transformer.") for k in state):
        raise CheckpointError(f"{source} holds no CLIP image and text towers (visual.*/image_encoder.* and "
                              "transformer.*/text_encoder.transformer.*): it is not a CLIP backbone checkpoint")
    missing = [k for k in REQUIRED if k not in state]
    return state, {"missing": missing, "dropped": sorted(dropped), "source": source}


def fill_missing(state: dict[str, Tensor], report: dict[str, Any], base: Mapping[str, Tensor], base_source: str
                 ) -> list[str]:
    """Copy the keys ``report["missing"]`` from ``base`` (the CLIP the run started from), checking shapes."""
    filled = []
    for key in report["missing"]:
        if key not in base:
            raise CheckpointError(f"{base_source} has no {key!r} either: pass the OpenAI CLIP the run started from")
        if key in ("token_embedding.weight",) and "positional_embedding" in state:
            width = state["positional_embedding"].shape[-1]
            if base[key].shape[-1] != width:
                raise CheckpointError(f"{base_source}: {key} has width {base[key].shape[-1]} but the checkpoint's "
                                      f"text tower has {width}: pass the CLIP the run started from")
        state[key] = base[key].detach().float()
        filled.append(key)
    report["missing"] = []
    report["filled_from_base"] = filled
    return filled
