"""Shared pieces of the ViFi-CLIP and GA2-CLIP importers: a tensors-only reader for pickles that carry
a config object, ``module.`` stripping, IVLP per-layer key mapping, and writing the adapter directory."""
from __future__ import annotations

import os
import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from .._version import __version__
from ..checkpoint import save_pretrained
from ..errors import CheckpointError, ConfigError, UnsafeCheckpointError
from . import RawAdapter, safe_load

#: config classes that training scripts pickle next to the weights; read as inert OrderedDicts
INERT_CONFIG_GLOBALS = ("yacs.config.CfgNode", "argparse.Namespace")


class _InertConfig:
    """Stands in for a pickled config class: unpickles to a plain ``OrderedDict``, running no code
    from the file (the weights-only unpickler only calls this ``__new__``)."""

    def __new__(cls, *args: Any) -> OrderedDict:  # type: ignore[misc]
        return OrderedDict()


def read_tensors_only(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` that also accepts the known config classes in
    ``INERT_CONFIG_GLOBALS`` (as inert dicts). Anything else still raises ``UnsafeCheckpointError``."""
    from torch.serialization import safe_globals

    with safe_globals([(_InertConfig, name) for name in INERT_CONFIG_GLOBALS]):
        try:
            return safe_load(path)
        except UnsafeCheckpointError:
            raise
        except CheckpointError:
            raise


def read_checkpoint(path: str | os.PathLike, allow_unsafe: bool = False) -> Any:
    """Weights-only load; a pickled yacs/argparse config is read as an inert dict (no code runs).
    Other non-tensor globals are refused unless ``allow_unsafe`` (then loaded with a warning)."""
    try:
        return safe_load(path)
    except UnsafeCheckpointError:
        pass
    try:
        return read_tensors_only(path)
    except UnsafeCheckpointError:
        if not allow_unsafe:
            raise
    return safe_load(path, allow_unsafe=True)


def strip_module(state: Mapping[str, Any]) -> dict[str, Tensor]:
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items() if isinstance(v, Tensor)}


def holds_prompt(path: Path, container: str, key: str) -> bool:
    """True when ``path`` reads (tensors only) as a dict whose ``container`` dict holds ``key``
    (``module.`` prefixes stripped); False for anything unreadable. Format detection."""
    try:
        obj = read_checkpoint(path)
        return isinstance(obj, dict) and isinstance(obj.get(container), dict) and key in strip_module(obj[container])
    except Exception:
        return False


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
    """The shape facts the file reveals (only those it has): checked by ``from_pretrained``."""
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


def check_options(fmt: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(k for k, v in options.items() if k not in allowed and v is not None)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for format {fmt!r}; allowed: {sorted(allowed)}")



def write_adapter(out_dir: str | os.PathLike, *, method: str, prompt: dict[str, Any], state: dict[str, Tensor],
                  backbone: dict[str, Any], classnames: list[str] | None, report: dict[str, Any]) -> Path:
    config = {
        "method": method, "prompt": prompt, "template": "{}.", "zero_shot_template": "a photo of a {}.",
        "backbone": backbone, "package_version": __version__, "imported_from": report,
    }
    if classnames:
        config["classnames"] = list(classnames)
    if report.get("skipped_backbone"):
        warnings.warn(f"{report['source']}: {report['skipped_backbone']} backbone tensors were not imported; the prompts "
                      "were trained on that backbone (ViFi-CLIP prompting starts from a K400-fine-tuned CLIP): load "
                      "the same weights into the CLIP model you wrap", stacklevel=3)
    return save_pretrained(RawAdapter(config, state), out_dir)


def split_report(state: Mapping[str, Tensor], used: set[str], dropped: set[str]) -> dict[str, Any]:
    """Classify the keys not mapped: class buffers (dropped), backbone weights (skipped), other prompt keys (unexpected)."""
    rest = [k for k in state if k not in used and k not in dropped]
    unexpected = sorted(k for k in rest if "VPT" in k or k.startswith("prompt_learner."))
    return {"dropped": sorted(dropped), "unexpected": unexpected, "skipped_backbone": len(rest) - len(unexpected)}
