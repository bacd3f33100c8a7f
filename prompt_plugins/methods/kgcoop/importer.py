"""Importer of the official KgCoOp checkpoints (spec backbones.md §4.4): ``<run>/prompt_learner/model.pth.tar-N``, a
Dassl.ProGrad ``save_checkpoint`` dict (no ``val_result``) whose ``state_dict`` is the prompt learner alone, without
prefix: ``ctx`` (n_ctx, D) or (C, n_ctx, D) -> ``prompt.ctx``; ``token_prefix`` / ``token_suffix`` (class buffers)
and the saved-but-unused ``bias_vectors`` and ``meta_net.linear1.*`` are dropped. Those two extra keys tell it from
a CoOp file (the ``coop`` importer matches exactly CoOp's keys). Class names are not stored: pass ``classnames``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from ...checkpoint import AdapterConfig
from ...errors import CheckpointError
from ...importers import Importer, formats_matching, register_importer
from ..coop.importer import CoOpImportOptions, check_names, coop_adapter, find_prompt_learner_file

#: what KgCoOp's prompt learner saves beside CoOp's ctx / token_prefix / token_suffix (unused by its forward)
EXTRA_KEYS = ("bias_vectors", "meta_net.linear1.weight", "meta_net.linear1.bias")


def _state_of(obj: Any) -> dict | None:
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    return state if isinstance(state, dict) else None


def matches(obj: Any) -> bool:
    state = _state_of(obj)
    return state is not None and isinstance(state.get("ctx"), Tensor) \
        and {"ctx", "token_prefix", "token_suffix"} <= set(state) and any(k in state for k in EXTRA_KEYS)


def remap(obj: Any, options: CoOpImportOptions, source: Path) -> tuple[AdapterConfig, dict[str, Tensor]]:
    if not matches(obj):
        state = _state_of(obj)
        keys = sorted(state)[:6] if state is not None else type(obj).__name__
        others = formats_matching(obj, exclude="kgcoop")
        raise CheckpointError(
            f"{source} is not a KgCoOp prompt-learner checkpoint: expected state_dict keys ctx, token_prefix, "
            f"token_suffix and {', '.join(EXTRA_KEYS)}, found {keys}"
            + (f"; it reads as {others}: pass --format {others[0]}" if others else ""))
    state = obj["state_dict"]
    ctx = state["ctx"]
    if ctx.dim() not in (2, 3) or not ctx.is_floating_point():
        raise CheckpointError(f"{source}: ctx has shape {tuple(ctx.shape)} / dtype {ctx.dtype}; expected a float "
                              "(n_ctx, D) or (C, n_ctx, D) tensor")
    config, tensors = coop_adapter(state, check_names(options.classnames, state, source))
    backbone = {**config.backbone, "backend": "official KgCoOp checkpoint"}
    report = {"dropped": sorted(k for k in state if k != "ctx"), "epoch": obj.get("epoch")}
    return config.replace(method="kgcoop", backbone=backbone, imported_from=report), tensors


register_importer(Importer("kgcoop", matches, remap, CoOpImportOptions, locate=find_prompt_learner_file,
                           doc="official KgCoOp prompt_learner/model.pth.tar-N (CoOp's keys + bias_vectors, meta_net)"))
