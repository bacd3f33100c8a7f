"""A checkpoint's own CLIP tower weights, put into the user's model while a wrapper is attached.

Released MaPLe / IVLP / PromptSRC / PromptKD files hold the whole model, frozen towers included, and Dassl's loader
overwrites the pristine CLIP with them (PromptSRC's prompt aggregation even perturbs them, spec backbones.md §3.4).
For exact parity with such a model an adapter can carry those weights (``tower.<name>`` tensors, ``name`` a key of
the user's ``model.state_dict()``): ``TowerWeights`` copies them in on attach and the originals back on ``eject()``,
so the model is handed back bit for bit as it was.
"""
from __future__ import annotations

import hashlib
from typing import Mapping

import torch
from torch import Tensor, nn

from .errors import CheckpointError

PREFIX = "tower."


def tower_summary(tensors: Mapping[str, Tensor]) -> dict[str, list[float]]:
    """Per tensor [sum, sum of squares] in float64: small enough to store with an adapter, enough to tell at load
    time which of a model's tower tensors differ from a checkpoint's and by how much (relative norm change)."""
    out = {}
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu", torch.float64)
        out[name] = [float(t.sum()), float((t * t).sum())]
    return out


def compare_summaries(saved: Mapping[str, list[float]], model: nn.Module) -> dict[str, float] | None:
    """Against ``model``'s own tensors: {"compared", "differ", "missing", "min_rel_diff"}; None when the model has
    none of the names (another library's naming). A tensor differs when its float64 sum or sum of squares moved
    (relative 1e-9: the same values give the same sums, in fp32 as in fp16); ``min_rel_diff`` is the largest
    lower bound |‖a‖ - ‖b‖| / ‖a‖ <= ‖a - b‖ / ‖a‖ over the differing tensors."""
    own = model.state_dict()
    names = [n for n in saved if n in own]
    if not names:
        return None
    mine = tower_summary({n: own[n] for n in names})
    differ, worst = 0, 0.0
    for n in names:
        (s0, q0), (s1, q1) = saved[n], mine[n]
        if abs(q1 - q0) > 1e-9 * max(q0, 1e-30) or abs(s1 - s0) > 1e-9 * (abs(s0) + q0 ** 0.5 + 1e-30):
            differ += 1
            worst = max(worst, abs(q1 ** 0.5 - q0 ** 0.5) / max(q0 ** 0.5, 1e-30))
    return {"compared": len(names), "differ": differ, "missing": len(saved) - len(names), "min_rel_diff": worst}


def tower_fingerprint(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 (16 hex digits) of ``tensors`` cast to fp16, in name order: equal for a pristine fp16 CLIP and the
    same weights loaded as fp32, different as soon as one weight differs by more than fp16 rounding."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class TowerWeights:
    """Replace some of ``model``'s parameters/buffers by ``tensors`` (names of ``model.state_dict()``) until
    ``restore()``. Every name must exist with the same shape; the values are cast to the model's dtype."""

    def __init__(self, model: nn.Module, tensors: Mapping[str, Tensor]):
        own = model.state_dict(keep_vars=True)
        unknown = sorted(set(tensors) - set(own))
        if unknown:
            raise CheckpointError(
                f"the adapter's tower weights do not fit this {type(model).__name__}: it has no {unknown[:5]}"
                f"{' ...' if len(unknown) > 5 else ''}. They are named as OpenAI clip.model.CLIP names them (open_clip's "
                "CLIP uses the same names); load the adapter with keep_towers=False to use this model's own weights")
        for name, value in tensors.items():
            if tuple(value.shape) != tuple(own[name].shape):
                raise CheckpointError(f"tower weight {name!r} has shape {tuple(value.shape)} in the adapter but "
                                      f"{tuple(own[name].shape)} in the model: another CLIP architecture")
            if not torch.isfinite(value).all():
                raise CheckpointError(f"tower weight {name!r} contains NaN or inf values")
        self.tensors = {k: v.detach().to("cpu").clone() for k, v in tensors.items()}
        self._targets = {name: own[name] for name in tensors}
        self._original = {name: t.detach().clone() for name, t in self._targets.items()}
        self._apply(self.tensors)

    def _apply(self, values: Mapping[str, Tensor]) -> None:
        with torch.no_grad():
            for name, target in self._targets.items():
                target.copy_(values[name].to(target.device, target.dtype))

    def restore(self) -> None:
        """The model's own weights back, exactly."""
        self._apply(self._original)

    def state_dict(self) -> dict[str, Tensor]:
        return {PREFIX + k: v for k, v in self.tensors.items()}
