"""GA2-CLIP's hard prompt H (n, Dt): the frozen layer-0 context of a prompt run on other data, from a tensor,
a ``.safetensors`` file or a checkpoint (GA2/IVLP ``model_best.pt``: ``model_state_dict['prompt_learner.ctx_VPT']``;
ViFi ``model['module.prompt_learner.ctx']``; a prompt-plugins adapter's ``prompt.ctx``)."""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from ...errors import CheckpointError, ConfigError
from ...importers.reader import read_checkpoint
from ...importers.remap import strip_module

#: keys tried, in order, when a hard-prompt file holds several tensors
HARD_PROMPT_KEYS = ("hard_prompt", "prompt_learner.ctx_VPT", "prompt_learner.ctx", "prompt.ctx", "prompt.soft.ctx",
                    "ctx")


def checkpoint_tensors(obj: Any) -> dict[str, Tensor]:
    """A checkpoint's tensors: unwrap ``model_state_dict``/``model``/``state_dict``, strip ``module.``."""
    if isinstance(obj, Tensor):
        return {"hard_prompt": obj}
    if not isinstance(obj, dict):
        raise CheckpointError(f"a hard-prompt file must hold a tensor or a dict of tensors, got {type(obj).__name__}")
    for key in ("model_state_dict", "model", "state_dict"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    return strip_module(obj)


def hard_prompt_from(obj: Any, key: str | None = None, where: str = "the given tensor") -> Tensor:
    """H as fp32 from a tensor or the object read from a file (``where`` names it in errors).

    ``key`` picks the tensor in a file holding several; otherwise ``HARD_PROMPT_KEYS`` are tried in order."""
    if isinstance(obj, Tensor):
        hard = obj
    else:
        tensors = checkpoint_tensors(obj)
        if key is not None:
            if key not in tensors:
                raise CheckpointError(f"{where} has no tensor {key!r}; it holds {sorted(tensors)[:20]}")
            hard = tensors[key]
        elif len(tensors) == 1:
            hard = next(iter(tensors.values()))
        else:
            found = next((k for k in HARD_PROMPT_KEYS if k in tensors), None)
            if found is None:
                raise CheckpointError(f"{where}: no hard prompt among {sorted(tensors)[:20]}; pass hard_prompt_key=...")
            hard = tensors[found]
    if hard.dim() != 2:
        raise ConfigError(f"the hard prompt from {where} has shape {tuple(hard.shape)}; expected (n_tokens, width)")
    if not hard.is_floating_point() or not torch.isfinite(hard).all():
        raise ConfigError(f"the hard prompt from {where} must be finite floating-point values")
    return hard.detach().float().cpu()


def load_hard_prompt(source: Tensor | str | os.PathLike, key: str | None = None, *,
                     allow_unsafe: bool = False) -> Tensor:
    """H (n, Dt) as fp32 from a tensor or a file (read with the package's one safe reader)."""
    if isinstance(source, Tensor):
        return hard_prompt_from(source, key)
    return hard_prompt_from(read_checkpoint(source, allow_unsafe=allow_unsafe), key, str(source))
