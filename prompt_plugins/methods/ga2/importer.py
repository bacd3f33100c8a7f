"""Importer of GA2-CLIP ``model_best.pt`` / ``last_model.pt`` (+ the external hard prompt) -> a ``ga2`` adapter.

Layout (spec ga2clip.md §4): ``{"epoch", "model_state_dict", "fusion_model_state_dict", "optimizer_state_dict"}``,
no ``module.`` prefix. Mapped keys:

    prompt_learner.ctx_VPT                   -> prompt.soft.ctx      (n, Dt)  (the soft tokens S)
    prompt_learner.proj_b2n_VPT.0.{weight,bias} -> prompt.proj.{weight,bias}
    text_encoder/image_encoder VPT, VPT_shallow -> prompt.soft.{text_deep, visual, visual_deep} (as ViFi)
    hard prompt (not in the file)            -> prompt.hard  from ``hard_prompt`` (the ``hard_prompt_pretrain``
                                                file: its ``model_state_dict['prompt_learner.ctx_VPT']``)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ...checkpoint import AdapterConfig
from ...errors import CheckpointError, ConfigError
from ...importers import Importer, register_importer
from ..coop.vificlip import VideoImportOptions, holds_prompt, imported_adapter, ivlp_prompts, model_state
from .config import CouplerConfig
from .coupler import HardSoftCoupler
from .hard_prompt import hard_prompt_from

PROJ = "prompt_learner.proj_b2n_VPT.0."


@dataclass
class GA2ImportOptions(VideoImportOptions):
    """hard_prompt: the run's ``hard_prompt_pretrain`` checkpoint, a ``.safetensors`` file or a tensor (the
    file does not hold it); hard_prompt_key: its tensor in a file holding several."""

    hard_prompt: Any = None
    hard_prompt_key: str | None = None

    def check(self) -> None:
        if self.hard_prompt is None:
            raise ConfigError("GA2-CLIP checkpoints do not contain the hard prompt: pass hard_prompt (CLI: --hard-prompt "
                              "FILE), the run's hard_prompt_pretrain checkpoint (e.g. k400_base_pre/model_best.pt)")


def matches(obj: Any) -> bool:
    return holds_prompt(obj, "model_state_dict", "prompt_learner.ctx_VPT")


def remap(obj: Any, options: GA2ImportOptions, source: Path, hard_prompt: Any) -> tuple[AdapterConfig, dict[str, Tensor]]:
    state = model_state(obj, "model_state_dict", source, "GA2-CLIP")
    used: set[str] = set()
    tensors, deep, vision_width = ivlp_prompts(state, "prompt_learner.ctx_VPT", used)
    missing = [PROJ + k for k in ("weight", "bias") if PROJ + k not in state]
    if missing:
        raise CheckpointError(f"{source}: missing keys {missing}: not a GA2-CLIP hard-soft checkpoint (plain IVLP? "
                              "convert it with --format vificlip-style keys or use it as a hard prompt)")
    n, width = tensors["ctx"].shape
    proj_w, proj_b = state[PROJ + "weight"].float(), state[PROJ + "bias"].float()
    if tuple(proj_w.shape) != (width, 2 * width) or tuple(proj_b.shape) != (width,):
        raise CheckpointError(f"{PROJ}weight has shape {tuple(proj_w.shape)}; expected ({width}, {2 * width})")
    used.update({PROJ + "weight", PROJ + "bias"})
    where = "tensor" if isinstance(options.hard_prompt, Tensor) else str(options.hard_prompt)
    hard = hard_prompt_from(hard_prompt, options.hard_prompt_key, where)
    if tuple(hard.shape) != (n, width):
        raise CheckpointError(f"the hard prompt has shape {tuple(hard.shape)} but the soft prompt is {(n, width)}")
    prompt = HardSoftCoupler.section(CouplerConfig(n_ctx=n, **deep.to_dict()))
    soft = {f"soft.{k}": v for k, v in tensors.items()}
    return imported_adapter(state, used, method="ga2", prompt=prompt,
                            tensors={"hard": hard, "proj.weight": proj_w, "proj.bias": proj_b, **soft},
                            text_width=width, vision_width=vision_width, classnames=options.classnames,
                            report={"source": str(source), "format": "ga2", "hard_prompt": where})


register_importer(Importer("ga2", matches, remap, GA2ImportOptions, files={"hard_prompt": None},
                           doc="GA2-CLIP model_best.pt / last_model.pt (+ --hard-prompt FILE)"))
