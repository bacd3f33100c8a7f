"""What every Dassl-trained recipe shares (CoOp, KgCoOp, MaPLe, IVLP, PromptSRC, DPC): SGD with Dassl's momentum 0.9
and weight decay 5e-4 (``zhengli97/PromptKD@ec244f7:Dassl.pytorch/dassl/config/defaults.py``), a cosine stepped once
per epoch after one constant warm-up epoch at 1e-5; and ``prose`` for the notes."""
from __future__ import annotations

from typing import Any


def dassl_sgd(lr: float) -> dict[str, Any]:
    """The ``Recipe`` fields of Dassl's SGD and warm-up cosine at peak ``lr``."""
    return dict(optimizer="sgd", lr=lr, momentum=0.9, weight_decay=5e-4, dampening=0.0, nesterov=False,
                schedule="dassl_cosine", warmup_epochs=1, warmup_type="constant", warmup_lr=1e-5)


def prose(text: str) -> str:
    """One line of prose from an indented triple-quoted block."""
    return " ".join(text.split())
