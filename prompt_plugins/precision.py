"""Output precision: features and logits are computed in at least float32.

fp16/bf16 towers give float32 features (stable softmax and losses); a float64 tower keeps
float64, so double-precision checks (gradient tests, DDP comparisons) are not cut to float32.
"""
from __future__ import annotations

import torch
from torch import Tensor


def at_least_fp32(t: Tensor) -> Tensor:
    """``t`` as float32 when narrower (fp16/bf16/ints), unchanged when float32 or float64."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()
