"""Importer of the released MaPLe files (spec backbones.md §1.1, §1.5): ``<run>/MultiModalPromptLearner/
model.pth.tar-N``, a Dassl dict whose ``state_dict`` is the whole ``CustomCLIP`` -> a ``maple`` adapter.

    prompt_learner.ctx                                      (N, Dt)  fp16 under PREC fp16 -> prompt.ctx
    prompt_learner.proj.{weight,bias}                       (Dv, Dt), (Dv) fp16 -> prompt.proj.*
    prompt_learner.compound_prompts_text.{0..J-2}           (N, Dt)  fp32 -> prompt.compound_prompts_text (stacked)
    prompt_learner.compound_prompt_projections.{0..J-2}.*   (Dv, Dt), (Dv) fp32 -> prompt.compound_prompt_projections.*

N and J come from the shapes and key counts (every tensor is stored as fp32); the fixed words after the context
("of a" for N_CTX 2 and "a photo of a") from ``token_suffix``; the frozen towers are reported (kept with
``keep_towers``). An IVLP, PromptSRC or PromptKD file is refused naming its format.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...checkpoint import AdapterConfig
from ...errors import CheckpointError
from ...importers import Importer, register_importer
from ...importers.dassl import dassl_state, find_dassl_checkpoint
from ..ivlp.released import RUN_FOLDERS, ReleasedImportOptions, check_format, released_adapter, released_format
from .config import MaPLeConfig
from .prompt import MaPLePrompt

FOLDERS = ("MultiModalPromptLearner", *(f for f in RUN_FOLDERS if f != "MultiModalPromptLearner"))
TEXT = "prompt_learner.compound_prompts_text.{}"
COUPLER = "prompt_learner.compound_prompt_projections.{}.{}"


def matches(obj: Any) -> bool:
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    return isinstance(state, dict) and released_format(dassl_state(obj, "", "")) == "maple"


def locate(path: Path, epoch: int | None = None) -> Path:
    return find_dassl_checkpoint(path, FOLDERS, epoch)


def _layers(state: dict[str, Tensor], pattern: str) -> list[int]:
    regex = re.compile(re.escape(pattern).replace(r"\{\}", r"(\d+)", 1).replace(r"\{\}", r"\w+") + "$")
    return sorted({int(m.group(1)) for k in state if (m := regex.match(k))})


def _get(state: dict[str, Tensor], key: str, shape: tuple[int, ...], source: Any, used: set[str]) -> Tensor:
    value = state.get(key)
    if not isinstance(value, Tensor):
        raise CheckpointError(f"{source}: the MaPLe checkpoint lacks {key!r}")
    if tuple(value.shape) != shape or not value.is_floating_point():
        raise CheckpointError(f"{source}: {key} has shape {tuple(value.shape)} / dtype {value.dtype}, expected a float "
                              f"tensor of shape {shape} (from prompt_learner.ctx and proj)")
    used.add(key)
    return value.float()


def maple_tensors(state: dict[str, Tensor], source: Any, used: set[str]) -> tuple[dict[str, Tensor], int]:
    """The prompt tensors named as ``MaPLePrompt``'s, and the depth J."""
    ctx = state["prompt_learner.ctx"]
    if ctx.dim() != 2 or not ctx.is_floating_point():
        raise CheckpointError(f"{source}: prompt_learner.ctx has shape {tuple(ctx.shape)}; expected (n_ctx, width)")
    n, dt = ctx.shape
    dv = int(state["prompt_learner.proj.weight"].shape[0]) if "prompt_learner.proj.weight" in state else 0
    tensors = {"ctx": _get(state, "prompt_learner.ctx", (n, dt), source, used),
               "proj.weight": _get(state, "prompt_learner.proj.weight", (dv, dt), source, used),
               "proj.bias": _get(state, "prompt_learner.proj.bias", (dv,), source, used)}
    text, coupled = _layers(state, TEXT), _layers(state, COUPLER)
    if text != list(range(len(text))) or coupled != text:
        raise CheckpointError(f"{source}: compound_prompts_text exist for layers {text} and compound_prompt_projections "
                              f"for {coupled}; expected the same layers 0..J-2 without gaps")
    if text:
        tensors["compound_prompts_text"] = torch.stack([_get(state, TEXT.format(i), (n, dt), source, used)
                                                        for i in text])
    for i in text:
        for part, shape in (("weight", (dv, dt)), ("bias", (dv,))):
            tensors[f"compound_prompt_projections.{i}.{part}"] = _get(state, COUPLER.format(i, part), shape, source,
                                                                      used)
    return tensors, 1 + len(text)


def remap(obj: Any, options: ReleasedImportOptions, source: Path) -> tuple[AdapterConfig, dict[str, Tensor]]:
    state = dassl_state(obj, source, "MaPLe")
    check_format(state, "maple", source)
    used: set[str] = set()
    tensors, depth = maple_tensors(state, source, used)
    n_ctx, text_width = tensors["ctx"].shape
    prompt = MaPLePrompt.section(MaPLeConfig(n_ctx=int(n_ctx), depth=depth))
    return released_adapter(state, used, method="maple", prompt=prompt, tensors=tensors, n_ctx=int(n_ctx),
                            text_width=int(text_width), vision_width=int(tensors["proj.weight"].shape[0]),
                            options=options, source=source)


register_importer(Importer("maple", matches, remap, ReleasedImportOptions, locate=locate,
                           doc="released MaPLe: MultiModalPromptLearner/model.pth.tar-N (full CustomCLIP)"))
