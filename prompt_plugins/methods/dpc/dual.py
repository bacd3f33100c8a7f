"""The two prompts of DPC: a frozen copy P of every dualised prompt tensor and a trainable one, and how
each route (base / new classes) combines them.

Three parametrisations (``mode``):

``"released"`` (default: what the released code effectively trains; spec dpc.md §2, the correction)
    The released ``PromptLearner`` stores ``ctx = nn.Parameter(pretuned_ctx)``, which shares storage with the
    "frozen" P, so its decode ``(ctx - (1 - w_b) P) / w_b`` is the identity in value while P is a constant to
    autograd. The trained tensor is therefore the parallel prompt ``X`` itself, initialised to P: base
    classes use ``X`` (bit for bit), its gradient is ``dL/dX / w_b``, so SGD moves ``X`` by
    ``-(lr / w_b) dL/dX`` (5x the learning rate at ``w_b = 0.2``) and weight decay acts on ``X``. New classes
    use ``P + w_n (X - P)`` with a fresh P (``== P`` exactly for ``w_n = 0``). Saved as ``dpc.X``; a
    released ``prompt_learner/model.pth.tar-E`` holds exactly this ``X``.

``"converse"`` (the released code read without the aliasing)
    The stored parameter is a *mixed* prompt ``M`` (init ``M = P``) decoded with a separate, frozen P:
    ``X = P + (M - P) / w_b`` (``X == P`` bit for bit at initialisation). Base classes use ``X``; new classes
    ``w_n X + (1 - w_n) P``. Because ``dL/dM = dL/dX / w_b``, SGD on ``M`` moves ``X`` by
    ``-(lr / w_b**2) dL/dX`` (25x at ``w_b = 0.2``). What it is for: loading adapters saved before
    ``"released"`` became the default (their config says ``converse``), and reproducing the PromptKD+DPC
    runs whose ``nn.Parameter(pre_ctx.type(dtype))`` copied P (a dtype cast breaks the aliasing, so the
    decode was real there).

``"paper"`` (the paper's formula)
    The parameter is the parallel prompt ``P'`` itself (init ``P' = P``). Base classes use
    ``w_b P' + (1 - w_b) P``; new classes use ``w_n P' + (1 - w_n) P``. Here SGD moves the base prompt by
    ``-(lr * w_b**2) dL/dP_base``.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from ...errors import CheckpointError, ConfigError
from ...precision import at_least_fp32
from .config import MODES, check_weights

Route = Literal["base", "new"]


def _keys(names: Sequence[str]) -> list[str]:
    """Module-safe keys for tensor names (``a.b`` -> ``a__b``), unique."""
    keys: list[str] = []
    for i, name in enumerate(names):
        key = name.replace(".", "__")
        keys.append(key if key not in keys else f"{key}__{i}")
    return keys


class DualPrompt(nn.Module):
    """``frozen`` (buffers: P) and ``trainable`` (parameters) for the named tensors ``tensors``."""

    def __init__(self, tensors: dict[str, Tensor], *, mode: str, weight_base: float, weight_new: float):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"mode={mode!r} is unknown: use one of {list(MODES)}")
        self.mode = mode
        self.weight_base, self.weight_new = check_weights(weight_base, weight_new)
        self.tensor_names: list[str] = list(tensors)
        self._keys = _keys(self.tensor_names)
        self.frozen = nn.Module()
        self.trainable = nn.ParameterDict()
        for key, value in zip(self._keys, tensors.values()):
            p = value.detach().clone()
            self.frozen.register_buffer(key, p)
            self.trainable[key] = nn.Parameter(p.clone())

    def _delta(self, key: str) -> Tensor:
        P, theta = self.frozen.get_buffer(key), self.trainable[key]
        diff = at_least_fp32(theta) - at_least_fp32(P)
        return diff / self.weight_base if self.mode == "converse" else diff

    def _released_base(self, key: str) -> Tensor:
        """X with its gradient scaled by 1/w_b: the value is X bit for bit."""
        x = self.trainable[key]
        return x.detach() + (x - x.detach()) / self.weight_base

    def route_tensors(self, route: Route) -> dict[str, Tensor]:
        """Prompt tensors for ``route``, keyed by the target's parameter names.

        released: base = X (gradient / w_b);     new = P + w_n (X - P)
        converse: base = X = P + (M - P)/w_b;    new = P + w_n (X - P)
        paper:    base = P + w_b (P' - P);       new = P + w_n (P' - P)
        """
        if route not in ("base", "new"):
            raise ConfigError(f"route={route!r} is unknown: use 'base' or 'new'")
        w = (1.0 if self.mode != "paper" else self.weight_base) if route == "base" else self.weight_new
        out = {}
        for name, key in zip(self.tensor_names, self._keys):
            P = self.frozen.get_buffer(key)
            if w == 0.0:
                out[name] = P
            elif route == "base" and self.mode == "released":
                out[name] = self._released_base(key)
            else:
                d = self._delta(key)
                out[name] = (at_least_fp32(P) + (d if w == 1.0 else w * d)).to(P.dtype)
        return out

    def frozen_tensors(self) -> dict[str, Tensor]:
        """The backbone prompt P, keyed by the target's parameter names."""
        return {name: self.frozen.get_buffer(key) for name, key in zip(self.tensor_names, self._keys)}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.trainable.values() if p.requires_grad]

    # ------------------------------------------------------------------ checkpoints
    def _label(self) -> str:
        return {"released": "X", "converse": "M", "paper": "P_prime"}[self.mode]

    def dual_state_dict(self) -> dict[str, Tensor]:
        """``dpc.P.<name>`` (frozen backbone prompt) and the trained tensor: ``dpc.X.<name>`` (released),
        ``dpc.M.<name>`` (converse) or ``dpc.P_prime.<name>`` (paper)."""
        label, state = self._label(), {}
        for name, key in zip(self.tensor_names, self._keys):
            state[f"dpc.P.{name}"] = self.frozen.get_buffer(key).detach()
            state[f"dpc.{label}.{name}"] = self.trainable[key].detach()
        return state

    def load_dual_state_dict(self, state: dict[str, Tensor], also_into: dict[str, Tensor] | None = None) -> None:
        """Load P and M (or P') strictly; ``also_into`` (name -> tensor) receives P as well."""
        label = self._label()
        expected = {f"dpc.P.{n}" for n in self.tensor_names} | {f"dpc.{label}.{n}" for n in self.tensor_names}
        given = {k for k in state if k.startswith("dpc.")}
        if given != expected:
            raise CheckpointError(
                f"DPC checkpoint does not fit this wrapper ({self.mode} mode): missing "
                f"{sorted(expected - given)}, unexpected {sorted(given - expected)}")
        with torch.no_grad():
            for name, key in zip(self.tensor_names, self._keys):
                pairs = [(state[f"dpc.P.{name}"], self.frozen.get_buffer(key)),
                         (state[f"dpc.{label}.{name}"], self.trainable[key])]
                if also_into is not None:
                    pairs.append((state[f"dpc.P.{name}"], also_into[name]))
                for src, dst in pairs:
                    if tuple(src.shape) != tuple(dst.shape):
                        raise CheckpointError(f"DPC tensor {name!r} has shape {tuple(src.shape)} in the "
                                              f"checkpoint but {tuple(dst.shape)} in the model")
                    if not src.is_floating_point():
                        raise CheckpointError(f"DPC tensor {name!r} has dtype {src.dtype} in the checkpoint, "
                                              "expected a floating-point tensor (a prompt is never integer)")
                    if not torch.isfinite(src).all():
                        raise CheckpointError(f"DPC tensor {name!r} contains NaN or inf values")
                    dst.copy_(src.to(dst.dtype))
