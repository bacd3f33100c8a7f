"""Importer of the official CoOp checkpoints (Dassl ``save_checkpoint`` files): ``<run>/prompt_learner/
model.pth.tar-N``, a dict ``{"state_dict": {"ctx", "token_prefix", "token_suffix"}, "epoch", "optimizer",
...}``; ``ctx`` is (n_ctx, D) or (C, n_ctx, D) (class-specific) -> a ``coop`` adapter.

Class names are not stored in these files: pass ``classnames`` here, or later to
``pp.from_pretrained(model, out_dir, classnames=...)``. The prompt template is CoOp's
``"X X .. X {classname}."``, which is prompt-plugins' default template.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ...checkpoint import AdapterConfig
from ...config import Config
from ...errors import CheckpointError, ClassNameError
from ...importers import Importer, register_importer
from ...prompts import SoftPrompt, SoftPromptConfig

CKPT_NAME = re.compile(r"^model(\.pth\.tar-(\d+)|-best\.pth\.tar)$")


@dataclass
class CoOpImportOptions(Config):
    """classnames: the class list of the run, in its order; epoch: which ``model.pth.tar-N`` of a run directory."""

    classnames: list[str] | None = None
    epoch: int | None = None


def find_prompt_learner_file(path: Path, epoch: int | None = None) -> Path:
    """A checkpoint file, or a run directory holding ``prompt_learner/model.pth.tar-N``
    (epoch ``epoch``, else ``model-best.pth.tar``, else the highest N)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"{str(path)!r} is neither a checkpoint file nor a run directory")
    folder = path / "prompt_learner" if (path / "prompt_learner").is_dir() else path
    if epoch is not None:
        file = folder / f"model.pth.tar-{epoch}"
        if not file.is_file():
            raise CheckpointError(f"{file} does not exist")
        return file
    if (folder / "model-best.pth.tar").is_file():
        return folder / "model-best.pth.tar"
    found = sorted((int(m.group(2)), p) for p in folder.iterdir() if (m := CKPT_NAME.match(p.name)) and m.group(2))
    if not found:
        raise CheckpointError(f"no model.pth.tar-N checkpoint in {folder}")
    return found[-1][1]


def coop_state(obj: Any, source: Any) -> dict[str, Tensor]:
    """The ``state_dict`` of an official CoOp prompt-learner checkpoint, validated."""
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not isinstance(state.get("ctx"), Tensor):
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{source} is not a CoOp prompt-learner checkpoint: expected a dict with "
                              f"state_dict['ctx'], found {keys}")
    ctx = state["ctx"]
    if ctx.dim() not in (2, 3) or not ctx.is_floating_point():
        raise CheckpointError(f"{source}: ctx has shape {tuple(ctx.shape)} / dtype {ctx.dtype}; expected a float "
                              "(n_ctx, D) or (C, n_ctx, D) tensor")
    return state


#: what CoOp's prompt learner saves (``token_midfix`` only with the class token in the middle, in some forks)
COOP_KEYS = frozenset({"ctx", "token_prefix", "token_suffix"})


def matches(obj: Any) -> bool:
    """CoOp's keys and no others: a file that also saves other tensors (KgCoOp's ``bias_vectors`` / ``meta_net``) is
    another trainer's, detected by its own importer."""
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    return isinstance(state, dict) and isinstance(state.get("ctx"), Tensor) \
        and COOP_KEYS <= set(state) <= COOP_KEYS | {"token_midfix"}


def check_names(classnames: list[str] | None, state: dict[str, Tensor], source: Any) -> list[str] | None:
    """``classnames`` checked against the number of classes the run's ``token_prefix`` holds."""
    if classnames is None:
        return None
    prefix = state.get("token_prefix")
    n = int(prefix.shape[0]) if isinstance(prefix, Tensor) and prefix.dim() == 3 else None
    if n is not None and n != len(classnames):
        raise ClassNameError(f"{source} was trained on {n} classes (token_prefix has {n} rows) but {len(classnames)} "
                             "class names were given; pass the class list of that run, in its order")
    return list(classnames)


def coop_adapter(state: dict[str, Tensor], classnames: list[str] | None) -> tuple[AdapterConfig, dict[str, Tensor]]:
    """(config, tensors) of the ``coop`` adapter holding this CoOp run's context."""
    ctx = state["ctx"]
    backbone: dict[str, Any] = {"backend": "official CoOp checkpoint", "text_width": int(ctx.shape[-1])}
    prefix, suffix = state.get("token_prefix"), state.get("token_suffix")
    if isinstance(prefix, Tensor) and isinstance(suffix, Tensor) and prefix.dim() == 3 and suffix.dim() == 3:
        backbone["context_length"] = int(prefix.shape[1] + ctx.shape[-2] + suffix.shape[1])
    prompt = SoftPromptConfig(n_ctx=int(ctx.shape[-2]), class_specific=ctx.dim() == 3)
    config = AdapterConfig(method="coop", prompt=SoftPrompt.section(prompt), classnames=classnames,
                           backbone=backbone)
    return config, {"prompt.ctx": ctx.float()}


def remap(obj: Any, options: CoOpImportOptions, source: Path) -> tuple[AdapterConfig, dict[str, Tensor]]:
    state = coop_state(obj, source)
    return coop_adapter(state, check_names(options.classnames, state, source))


register_importer(Importer("coop", matches, remap, CoOpImportOptions, locate=find_prompt_learner_file,
                           doc="official CoOp prompt_learner/model.pth.tar-N (ctx, token_prefix, token_suffix)"))
