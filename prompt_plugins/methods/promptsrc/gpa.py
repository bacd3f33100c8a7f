"""Gaussian prompt aggregation (GPA, spec backbones.md §3.4): a weighted average of the prompts over epochs.

Epoch e of N (1-based) gets g_e = N(e; mean, std²) / Σ_k N(k; mean, std²). Call ``end_epoch()`` once after every
epoch (after its last step and lr update, as the release does); after epoch N the aggregate Σ_e g_e·P_e is loaded
into the prompt tensors, so what is saved and tested is the aggregate, as released (the release's final
``model.pth.tar-N`` *is* the GPA model).

Unlike the release, which scaled and summed the **whole** ``model.state_dict()`` in its own dtype (fp16 towers
and context included, so the "frozen" fp16 tower weights come back perturbed by up to ~6e-5), this accumulates in
fp32 and over the prompt tensors only; the CLIP is never touched. ``state_dict()`` / ``load_state_dict()`` carry
the running sums, so a resumed run ends with the same prompts as an uninterrupted one.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ...config import check_int, check_number
from ...errors import CheckpointError, ConfigError


def gaussian_weights(epochs: int, mean: float, std: float) -> Tensor:
    """(epochs,) float64 g_e ∝ exp(−(e − mean)² / (2 std²)) for e = 1..epochs, summing to 1 (computed as a softmax,
    so a mean far from every epoch still gives finite weights)."""
    check_int("epochs", epochs, 1)
    check_number("mean", mean)
    check_number("std", std, low=0.0, low_open=True)
    e = torch.arange(1, epochs + 1, dtype=torch.float64)
    return torch.softmax(-0.5 * ((e - mean) / std) ** 2, dim=0)


class GaussianPromptAggregation:
    """GPA over ``module``'s prompt tensors: ``gpa.end_epoch()`` after each of the ``epochs`` epochs.

    module:  the prompt module (``prompted.prompt``) or any module; names: the parameters to aggregate (default:
             ``module.prompt_tensor_names()`` for a prompt module, else every parameter that requires grad).
    mean, std: of the Gaussian over epochs 1..epochs (released: 15, 1 over 20 epochs; ``GPAConfig``).
    """

    def __init__(self, module: nn.Module, epochs: int, mean: float = 15.0, std: float = 1.0, *,
                 names: Sequence[str] | None = None):
        self.weights = gaussian_weights(epochs, mean, std)
        self.epochs, self.mean, self.std = int(epochs), float(mean), float(std)
        params = dict(module.named_parameters())
        if names is None:
            names = module.prompt_tensor_names() if hasattr(module, "prompt_tensor_names") else \
                [n for n, p in params.items() if p.requires_grad]
        unknown = [n for n in names if n not in params]
        if unknown or not names:
            raise ConfigError(f"names {list(names)} must be parameters of {type(module).__name__} "
                              f"({sorted(params)[:8]}); unknown: {unknown}")
        self.names = list(names)
        self._params = {n: params[n] for n in self.names}
        self.epochs_done = 0
        self.sums: dict[str, Tensor] = {}

    @property
    def finished(self) -> bool:
        return self.epochs_done == self.epochs

    def end_epoch(self, epoch: int | None = None) -> None:
        """Add this epoch's prompts with their weight (``epoch``: its 0-based index, checked against the epochs
        already aggregated); after the last epoch, load the aggregate into the module."""
        if self.finished:
            raise ConfigError(f"GPA over {self.epochs} epochs is complete: end_epoch() was called once per epoch "
                              "already (build a new GaussianPromptAggregation for another run)")
        if epoch is not None and epoch != self.epochs_done:
            raise ConfigError(f"end_epoch({epoch}) after {self.epochs_done} aggregated epoch(s): call it once after "
                              "every epoch, in order (a resumed run loads the saved state with load_state_dict first)")
        g = float(self.weights[self.epochs_done])
        with torch.no_grad():
            for name, p in self._params.items():
                term = p.detach().float() * g
                self.sums[name] = term if name not in self.sums else self.sums[name] + term
        self.epochs_done += 1
        if self.finished:
            self.apply()

    def aggregate(self) -> dict[str, Tensor]:
        """Σ_e g_e·P_e over the epochs so far (fp32; the GPA prompts once ``finished``)."""
        return {n: t.clone() for n, t in self.sums.items()}

    def apply(self) -> None:
        """Copy the aggregate into the module's prompt tensors (done by the last ``end_epoch``)."""
        if not self.finished:
            raise ConfigError(f"GPA has aggregated {self.epochs_done} of {self.epochs} epochs: apply() after the last")
        with torch.no_grad():
            for name, p in self._params.items():
                p.copy_(self.sums[name].to(p.device, p.dtype))

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "mean": self.mean, "std": self.std, "names": list(self.names),
                "epochs_done": self.epochs_done, "sums": {n: t.detach().clone() for n, t in self.sums.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved aggregation; one saved for another epoch count, Gaussian or prompt is refused."""
        if not isinstance(state, dict) or not {"epochs", "mean", "std", "names", "epochs_done", "sums"} <= set(state):
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(f"not a GaussianPromptAggregation state: found {found}")
        if state["epochs"] != self.epochs:
            raise ConfigError(f"the GPA state was saved by a run of {state['epochs']} epochs, this aggregation runs "
                              f"{self.epochs}: its weights g_e depend on the epoch count, so the sums cannot be "
                              f"continued. Resume with {state['epochs']} epochs, or start the run again")
        if (float(state["mean"]), float(state["std"])) != (self.mean, self.std):
            raise ConfigError(f"the GPA state was saved with mean {state['mean']}, std {state['std']}; this "
                              f"aggregation uses mean {self.mean}, std {self.std}: resume with the same settings")
        if list(state["names"]) != self.names:
            raise ConfigError(f"the GPA state aggregates {list(state['names'])}, this one {self.names}")
        done = state["epochs_done"]
        expected = set(self.names) if done else set()
        if not isinstance(done, int) or not 0 <= done <= self.epochs or set(state["sums"]) != expected:
            raise CheckpointError(f"the GPA state is inconsistent: {done} epoch(s) done with sums for "
                                  f"{sorted(state['sums'])}")
        for name, t in state["sums"].items():
            if tuple(t.shape) != tuple(self._params[name].shape):
                raise CheckpointError(f"the GPA sum of {name!r} has shape {tuple(t.shape)}, the prompt "
                                      f"{tuple(self._params[name].shape)}")
        self.epochs_done = done
        self.sums = {n: t.detach().to(self._params[n].device, torch.float32).clone() for n, t in state["sums"].items()}

    def __repr__(self) -> str:
        return (f"GaussianPromptAggregation(epochs={self.epochs}, mean={self.mean:g}, std={self.std:g}, "
                f"tensors={self.names}, done={self.epochs_done})")
