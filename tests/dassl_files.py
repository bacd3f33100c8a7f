"""Checkpoints written the way Dassl's ``save_checkpoint`` writes them (CoOp, CoOp+DPC runs): ``{"state_dict",
"epoch", "optimizer", "scheduler", "val_result"}`` with a real SGD optimiser state dict and the state dict of
Dassl's warm-up scheduler, which pickles its successor: a real ``torch.optim.lr_scheduler.CosineAnnealingLR``
holding the SGD optimiser object. Dassl's scheduler classes are re-created here from their description (the
released ones pass an argument torch 2.14 rejects) under their module name, ``dassl.optim.lr_scheduler``."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, _LRScheduler


class _BaseWarmupScheduler(_LRScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, last_epoch=-1):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer, last_epoch)

    def step(self, epoch=None):
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)


class ConstantWarmupScheduler(_BaseWarmupScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, cons_lr, last_epoch=-1):
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]


_module = types.ModuleType("dassl.optim.lr_scheduler")
for _cls in (_BaseWarmupScheduler, ConstantWarmupScheduler):
    _cls.__module__ = _module.__name__
    setattr(_module, _cls.__name__, _cls)


def dassl_optim(params, lr: float = 0.002, max_epoch: int = 10):
    """Dassl's SGD (momentum 0.9, weight decay 5e-4) and its cosine schedule after one constant warm-up epoch."""
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4, dampening=0, nesterov=False)
    sched = ConstantWarmupScheduler(opt, CosineAnnealingLR(opt, float(max_epoch)), 1, 1e-5)
    return opt, sched


def save_checkpoint(path: Path, state_dict: dict, opt, sched, epoch: int, *, val_result: bool = True) -> Path:
    """As ``dassl.utils.save_checkpoint``: ``torch.save`` of the dict below at ``path`` (``val_result=False``: as
    Dassl.ProGrad's copy, KgCoOp's, which saves none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.modules.setdefault("dassl", types.ModuleType("dassl"))
    sys.modules.setdefault("dassl.optim", types.ModuleType("dassl.optim"))
    sys.modules["dassl.optim.lr_scheduler"] = _module
    extra = {"val_result": None} if val_result else {}
    torch.save({"state_dict": state_dict, "epoch": epoch, "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), **extra}, path)
    for name in ("dassl.optim.lr_scheduler", "dassl.optim", "dassl"):  # the reader must not need Dassl
        sys.modules.pop(name, None)
    return path
