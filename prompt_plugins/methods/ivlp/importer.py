"""Importer of the MaPLe repository's IVLP trainer files (spec backbones.md §2): ``<run>/VLPromptLearner/
model.pth.tar-N``, a Dassl dict whose ``state_dict`` is the whole ``CustomCLIP`` -> an ``ivlp`` adapter.

    prompt_learner.ctx                                   (n_t, Dt) -> prompt.ctx
    text_encoder.transformer.resblocks.{i}.VPT_shallow   (n_t, Dt) -> prompt.text_deep[i-1]   (i = 1 .. Jt-1)
    image_encoder.VPT                                    (n_v, Dv) -> prompt.visual           (when Jv > 0)
    image_encoder.transformer.resblocks.{i}.VPT_shallow  (n_v, Dv) -> prompt.visual_deep[i-1] (i = 1 .. Jv-1)

n_ctx and the depths come from the shapes and key counts; the fixed words after the context ("of a" for N_CTX 2 and
"a photo of a") from ``token_suffix``; the frozen towers are reported (kept with ``keep_towers``). PromptSRC files
hold the same keys plus ``ZS_image_encoder.*`` and PromptKD students have no text context: both are refused here,
naming their own format, so detection is unambiguous.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from ...checkpoint import AdapterConfig
from ...importers import Importer, register_importer
from ...importers.dassl import dassl_state, find_dassl_checkpoint
from ...prompts import SoftPrompt, SoftPromptConfig
from ..coop.vificlip import ivlp_prompts
from .released import RUN_FOLDERS, ReleasedImportOptions, check_format, released_adapter, released_format

FOLDERS = ("VLPromptLearner", *(f for f in RUN_FOLDERS if f != "VLPromptLearner"))


def _state(obj: Any) -> dict[str, Tensor] | None:
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    return dassl_state(obj, "", "") if isinstance(state, dict) else None


def matches(obj: Any) -> bool:
    state = _state(obj)
    return state is not None and released_format(state) == "ivlp"


def locate(path: Path, epoch: int | None = None) -> Path:
    return find_dassl_checkpoint(path, FOLDERS, epoch)


def ivlp_adapter(state: dict[str, Tensor], options: ReleasedImportOptions, source: Any, *, method: str = "ivlp",
                 used: set[str] | None = None) -> tuple[AdapterConfig, dict[str, Tensor]]:
    """The adapter of an IVLP-keyed full-model state (``used``: keys a caller already mapped)."""
    used = set() if used is None else used
    tensors, deep, vision_width = ivlp_prompts(state, "prompt_learner.ctx", used)
    n_ctx, text_width = tensors["ctx"].shape
    prompt = SoftPrompt.section(SoftPromptConfig(n_ctx=int(n_ctx), **deep.to_dict()))
    return released_adapter(state, used, method=method, prompt=prompt, tensors=tensors, n_ctx=int(n_ctx),
                            text_width=int(text_width), vision_width=vision_width, options=options, source=source)


def remap(obj: Any, options: ReleasedImportOptions, source: Path) -> tuple[AdapterConfig, dict[str, Tensor]]:
    state = dassl_state(obj, source, "IVLP")
    check_format(state, "ivlp", source)
    return ivlp_adapter(state, options, source)


register_importer(Importer("ivlp", matches, remap, ReleasedImportOptions, locate=locate,
                           doc="MaPLe repository's IVLP trainer: VLPromptLearner/model.pth.tar-N (full CustomCLIP)"))
