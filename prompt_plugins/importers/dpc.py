"""Importers for the official CoOp and CoOp+DPC checkpoints (Dassl ``save_checkpoint`` files).

* ``coop``: ``<run>/prompt_learner/model.pth.tar-N``, a dict ``{"state_dict": {"ctx",
  "token_prefix", "token_suffix"}, "epoch", "optimizer", ...}``; ``ctx`` is (n_ctx, D) or
  (C, n_ctx, D) (class-specific). -> a ``coop`` adapter directory.
* ``dpc``: the CoOp backbone file (P) + the DPC ``prompt_learner/model.pth.tar-E`` whose
  ``ctx`` is the *mixed* parameter M, + w_b -> a ``dpc`` adapter directory (converse mode).

Class names are not stored in these files: pass ``classnames`` (and ``base_classes``) here, or
later to ``pp.from_pretrained(model, out_dir, classnames=..., base_classes=...)``. The prompt
template is CoOp's ``"X X .. X {classname}."``, which is prompt-plugins' default ``"{}."``.
Files are read with ``weights_only=True``; a pickle that needs arbitrary code is refused.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

from torch import Tensor

from .._version import __version__
from ..checkpoint import save_pretrained
from ..errors import CheckpointError, ClassNameError, ConfigError
from . import RawAdapter, register_importer, safe_load

CKPT_NAME = re.compile(r"^model(\.pth\.tar-(\d+)|-best\.pth\.tar)$")


def find_prompt_learner_file(path: str | os.PathLike, epoch: int | None = None) -> Path:
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
    found = sorted((int(m.group(2)), p) for p in folder.iterdir()
                   if (m := CKPT_NAME.match(p.name)) and m.group(2))
    if not found:
        raise CheckpointError(f"no model.pth.tar-N checkpoint in {folder}")
    return found[-1][1]


def read_coop_state(path: str | os.PathLike, *, allow_unsafe: bool = False) -> dict[str, Tensor]:
    """The ``state_dict`` of an official CoOp prompt-learner checkpoint, validated."""
    obj = safe_load(path, allow_unsafe=allow_unsafe)
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not isinstance(state.get("ctx"), Tensor):
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} is not a CoOp prompt-learner checkpoint: expected a dict with "
                              f"state_dict['ctx'], found {keys}")
    ctx = state["ctx"]
    if ctx.dim() not in (2, 3) or not ctx.is_floating_point():
        raise CheckpointError(f"{path}: ctx has shape {tuple(ctx.shape)} / dtype {ctx.dtype}; expected a float "
                              "(n_ctx, D) or (C, n_ctx, D) tensor")
    return state


def _detect_coop(path: Path) -> bool:
    try:
        file = find_prompt_learner_file(path)
        state = read_coop_state(file)
    except Exception:
        return False
    return {"ctx", "token_prefix", "token_suffix"} <= set(state)


def _coop_prompt_config(ctx: Tensor) -> dict[str, Any]:
    return {"type": "soft", "n_ctx": int(ctx.shape[-2]), "ctx_init": None, "class_specific": ctx.dim() == 3,
            "depth": 1, "n_visual_ctx": 0, "visual_depth": None, "init_std": 0.02}


def _coop_fingerprint(state: dict[str, Tensor]) -> dict[str, Any]:
    ctx = state["ctx"]
    fp: dict[str, Any] = {"backend": "official CoOp checkpoint", "text_width": int(ctx.shape[-1])}
    prefix, suffix = state.get("token_prefix"), state.get("token_suffix")
    if isinstance(prefix, Tensor) and isinstance(suffix, Tensor) and prefix.dim() == 3 and suffix.dim() == 3:
        fp["context_length"] = int(prefix.shape[1] + ctx.shape[-2] + suffix.shape[1])
    return fp


def _n_classes(state: dict[str, Tensor]) -> int | None:
    prefix = state.get("token_prefix")
    return int(prefix.shape[0]) if isinstance(prefix, Tensor) and prefix.dim() == 3 else None


def _check_names(classnames: Sequence[str] | None, state: dict[str, Tensor], path: Any) -> list[str] | None:
    if classnames is None:
        return None
    names = list(classnames)
    n = _n_classes(state)
    if n is not None and n != len(names):
        raise ClassNameError(f"{path} was trained on {n} classes (token_prefix has {n} rows) but {len(names)} "
                             "class names were given; pass the class list of that run, in its order")
    return names



def coop_adapter(state: dict[str, Tensor], classnames: list[str] | None) -> tuple[dict[str, Any], dict]:
    config = {"method": "coop", "prompt": _coop_prompt_config(state["ctx"]), "template": "{}.",
              "zero_shot_template": "a photo of a {}.", "classnames": classnames,
              "backbone": _coop_fingerprint(state), "package_version": __version__}
    return config, {"prompt.ctx": state["ctx"].float()}


def convert_coop(path: str | os.PathLike, out_dir: str | os.PathLike, *, classnames: Sequence[str] | None = None,
                 epoch: int | None = None, allow_unsafe: bool = False, **_: Any) -> Path:
    """Official CoOp ``prompt_learner/model.pth.tar-N`` (or its run directory) -> coop adapter directory."""
    file = find_prompt_learner_file(path, epoch)
    state = read_coop_state(file, allow_unsafe=allow_unsafe)
    config, tensors = coop_adapter(state, _check_names(classnames, state, file))
    return save_pretrained(RawAdapter(config, tensors), out_dir)


def convert_dpc(path: str | os.PathLike, out_dir: str | os.PathLike, *, backbone: str | os.PathLike | None = None,
                weight_base: float | None = None, weight_new: float = 0.0, classnames: Sequence[str] | None = None,
                base_classes: Sequence[str] | None = None, epoch: int | None = None,
                backbone_epoch: int | None = None, allow_unsafe: bool = False, **_: Any) -> Path:
    """Official CoOp+DPC checkpoint (``ctx`` = mixed parameter M) + its CoOp backbone (P) + w_b
    -> dpc adapter directory (converse mode: base classes use X = P + (M - P) / w_b).

    base_classes: names of the base classes; default: every class in ``classnames`` (a DPC run
    trains on base classes only, so its class list is the base list).
    """
    from ..prompts.dual import _check_weight

    if backbone is None:
        raise ConfigError("a DPC checkpoint stores only the mixed prompt M: pass backbone=<the CoOp run "
                          "directory or prompt_learner/model.pth.tar-N it was trained from> (CLI: --backbone)")
    if weight_base is None:
        raise ConfigError("pass weight_base (w_b, STACK.WEIGHT of the DPC run: 0.2 in the paper, 0.5 in most "
                          "released CoOp configs); it cannot be read from the checkpoint")
    wb = _check_weight("weight_base", weight_base, allow_zero=False)
    wn = _check_weight("weight_new", weight_new, allow_zero=True)
    dpc_file = find_prompt_learner_file(path, epoch)
    back_file = find_prompt_learner_file(backbone, backbone_epoch)
    mixed = read_coop_state(dpc_file, allow_unsafe=allow_unsafe)
    back = read_coop_state(back_file, allow_unsafe=allow_unsafe)
    if tuple(mixed["ctx"].shape) != tuple(back["ctx"].shape):
        raise CheckpointError(f"DPC ctx {tuple(mixed['ctx'].shape)} ({dpc_file}) and backbone ctx "
                              f"{tuple(back['ctx'].shape)} ({back_file}) differ: wrong backbone or N_CTX")
    names = _check_names(classnames, mixed, dpc_file)
    if base_classes is not None:
        if names is None:
            raise ConfigError("base_classes needs classnames (the class list of the DPC run)")
        missing = [c for c in base_classes if c not in names]
        if missing:
            raise ClassNameError(f"base classes {missing} are not in the class list")
        base = list(base_classes)
    else:
        base = names
    inner, _ = coop_adapter(back, names)
    config = {
        "method": "dpc", "classnames": names, "backbone": inner["backbone"], "inner": inner,
        "package_version": __version__,
        "dpc": {"mode": "converse", "weight_base": wb, "weight_new": wn, "tensors": ["ctx"], "target": "prompted",
                "base_classes": base, "base_indices": None if names is None else [names.index(c) for c in base]},
    }
    tensors = {"dpc.P.ctx": back["ctx"].float(), "dpc.M.ctx": mixed["ctx"].float()}
    return save_pretrained(RawAdapter(config, tensors), out_dir)


register_importer("coop", _detect_coop, convert_coop,
                  "official CoOp prompt_learner/model.pth.tar-N (ctx, token_prefix, token_suffix)")
register_importer("dpc", lambda path: False, convert_dpc,
                  "official CoOp+DPC prompt_learner/model.pth.tar-E (ctx = mixed M) + backbone= + weight_base=; "
                  "looks like a CoOp file, so never auto-detected: pass --format dpc")
