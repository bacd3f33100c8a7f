"""Importer of the official CoOp+DPC checkpoints: the DPC ``prompt_learner/model.pth.tar-E`` + the CoOp backbone
it was trained from -> a ``dpc`` adapter in ``"released"`` mode.

In the released code the stored ``ctx`` and the "frozen" backbone prompt are one tensor (spec dpc.md §2), so
the saved ``ctx`` *is* the parallel prompt X that base classes use (the base-class logits of the released
model equal CoOp's with this ``ctx``), and new classes use the backbone's P (``WEIGHT_FOR_NEW`` 0). The
format looks like a CoOp file, so it is never detected: pass ``--format dpc`` (``format="dpc"``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ...checkpoint import AdapterConfig
from ...config import Config
from ...errors import CheckpointError, ClassNameError, ConfigError
from ...importers import Importer, register_importer
from ..coop.importer import check_names, coop_adapter, coop_state, find_prompt_learner_file, matches
from .config import DPCSection, check_weights


@dataclass
class DPCImportOptions(Config):
    """backbone: the CoOp run directory or ``model.pth.tar-N`` the DPC run started from (P, for new classes);
    weight_base: w_b (``STACK.WEIGHT`` of the run: 0.2 in the paper, 0.5 in most released CoOp configs; it does
    not change the imported model's logits, only the gradient scale if you train on); weight_new: w_n
    (``WEIGHT_FOR_NEW``); classnames / base_classes: the run's class list and which of them are base (default:
    all of them, as a DPC run trains on base classes only); epoch / backbone_epoch: which checkpoint of each
    run directory."""

    backbone: Any = None
    weight_base: float = 0.2
    weight_new: float = 0.0
    classnames: list[str] | None = None
    base_classes: list[str] | None = None
    epoch: int | None = None
    backbone_epoch: int | None = None

    def check(self) -> None:
        if self.backbone is None:
            raise ConfigError("a DPC checkpoint stores only the base-class prompt X; new classes use the backbone's: "
                              "pass backbone=<the CoOp run directory or prompt_learner/model.pth.tar-N it was trained "
                              "from> (CLI: --backbone PATH)")
        check_weights(self.weight_base, self.weight_new)


def remap(obj: Any, options: DPCImportOptions, source: Path, backbone: Any) -> tuple[AdapterConfig, dict[str, Tensor]]:
    parallel, back = coop_state(obj, source), coop_state(backbone, options.backbone)
    if tuple(parallel["ctx"].shape) != tuple(back["ctx"].shape):
        raise CheckpointError(f"DPC ctx {tuple(parallel['ctx'].shape)} ({source}) and backbone ctx "
                              f"{tuple(back['ctx'].shape)} ({options.backbone}) differ: wrong backbone or N_CTX")
    names = check_names(options.classnames, parallel, source)
    if options.base_classes is not None:
        if names is None:
            raise ConfigError("base_classes needs classnames (the class list of the DPC run)")
        missing = [c for c in options.base_classes if c not in names]
        if missing:
            raise ClassNameError(f"base classes {missing} are not in the class list")
        base = list(options.base_classes)
    else:
        base = names
    inner, _ = coop_adapter(back, names)
    section = DPCSection(mode="released", weight_base=options.weight_base, weight_new=options.weight_new,
                         tensors=["ctx"], base_classes=base,
                         base_indices=None if names is None else [names.index(c) for c in base])
    config = AdapterConfig(method="dpc", classnames=names, backbone=inner.backbone, inner=inner.to_dict(),
                           dpc=section.to_dict())
    return config, {"dpc.P.ctx": back["ctx"].float(), "dpc.X.ctx": parallel["ctx"].float()}


register_importer(Importer("dpc", matches, remap, DPCImportOptions, files={"backbone": "backbone_epoch"},
                           locate=find_prompt_learner_file, detectable=False,
                           doc="official CoOp+DPC prompt_learner/model.pth.tar-E (ctx = the base prompt X) + "
                               "backbone=; looks like a CoOp file, so never auto-detected: pass --format dpc"))
