"""GA2-CLIP ``model_best.pt`` / ``last_model.pt`` (+ the external hard prompt) -> a ``ga2`` adapter.

Layout (spec ga2clip.md §4): ``{"epoch", "model_state_dict", "fusion_model_state_dict", "optimizer_state_dict"}``,
no ``module.`` prefix. Mapped keys:

    prompt_learner.ctx_VPT                   -> prompt.soft.ctx      (n, Dt)  (the soft tokens S)
    prompt_learner.proj_b2n_VPT.0.{weight,bias} -> prompt.proj.{weight,bias}
    text_encoder/image_encoder VPT, VPT_shallow -> prompt.soft.{text_deep, visual, visual_deep} (as ViFi)
    hard prompt (not in the file)            -> prompt.hard  from ``hard_prompt`` (the ``hard_prompt_pretrain``
                                                file: its ``model_state_dict['prompt_learner.ctx_VPT']``)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError
from ..prompts.coupler import load_hard_prompt
from . import register_importer
from ._video import (backbone_fingerprint, check_options, holds_prompt, read_checkpoint, split_report, strip_module,
                     write_adapter)
from .vificlip import CLASS_BUFFERS, ivlp_prompts

PROJ = "prompt_learner.proj_b2n_VPT.0."


def model_state(obj: Any, path: Path) -> dict:
    if not isinstance(obj, dict) or not isinstance(obj.get("model_state_dict"), dict):
        raise CheckpointError(f"{path} is not a GA2-CLIP checkpoint: expected a dict with 'model_state_dict'")
    return strip_module(obj["model_state_dict"])


def detect(path: Path) -> bool:
    return holds_prompt(path, "model_state_dict", "prompt_learner.ctx_VPT")


def convert(path: str | os.PathLike, out_dir: str | os.PathLike, *, hard_prompt: Any = None,
            hard_prompt_key: str | None = None, classnames: list[str] | None = None, allow_unsafe: bool = False,
            **options: Any) -> Path:
    check_options("ga2", options, ())
    path = Path(path)
    if hard_prompt is None:
        raise ConfigError("GA2-CLIP checkpoints do not contain the hard prompt: pass hard_prompt (CLI: --hard-prompt "
                          "FILE), the run's hard_prompt_pretrain checkpoint (e.g. k400_base_pre/model_best.pt)")
    state = model_state(read_checkpoint(path, allow_unsafe=allow_unsafe), path)
    used: set[str] = set()
    tensors, prompt_cfg, vision_width = ivlp_prompts(state, "prompt_learner.ctx_VPT", used)
    missing = [PROJ + k for k in ("weight", "bias") if PROJ + k not in state]
    if missing:
        raise CheckpointError(f"{path}: missing keys {missing}: not a GA2-CLIP hard-soft checkpoint (plain IVLP? "
                              "convert it with --format vificlip-style keys or use it as a hard prompt)")
    n, width = tensors["ctx"].shape
    proj_w, proj_b = state[PROJ + "weight"].float(), state[PROJ + "bias"].float()
    if tuple(proj_w.shape) != (width, 2 * width) or tuple(proj_b.shape) != (width,):
        raise CheckpointError(f"{PROJ}weight has shape {tuple(proj_w.shape)}; expected ({width}, {2 * width})")
    used.update({PROJ + "weight", PROJ + "bias"})
    hard = load_hard_prompt(hard_prompt, hard_prompt_key, allow_unsafe=allow_unsafe)
    if tuple(hard.shape) != (n, width):
        raise CheckpointError(f"the hard prompt has shape {tuple(hard.shape)} but the soft prompt is {(n, width)}")
    dropped = {k for k in state if k in CLASS_BUFFERS}
    report = {"source": str(path), "format": "ga2", "hard_prompt": str(hard_prompt) if not hasattr(hard_prompt, "shape")
              else "tensor", **split_report(state, used, dropped)}
    prompt = {"type": "hard_soft", "couple": "first", "activation": "relu", "dropout": 0.5, **prompt_cfg}
    out = {"prompt.hard": hard, "prompt.proj.weight": proj_w, "prompt.proj.bias": proj_b,
           **{f"prompt.soft.{k}": v for k, v in tensors.items()}}
    return write_adapter(out_dir, method="ga2", prompt=prompt, state=out,
                         backbone=backbone_fingerprint(state, width, vision_width), classnames=classnames, report=report)


register_importer("ga2", detect, convert, "GA2-CLIP model_best.pt / last_model.pt (+ --hard-prompt FILE)")
