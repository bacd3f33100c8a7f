"""The training state saved after every epoch (``training_state.pt`` in a seed's folder) and read by
``--resume``: the prompt tensors, the optimizer and scheduler states, every random generator the run draws
from, the epochs done and the plan it belongs to. Written atomically; read weights-only (tensors and plain
data, no code runs)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ..files import write_atomic
from ..errors import CheckpointError, ConfigError

STATE_NAME = "training_state.pt"
STATE_VERSION = 1


def rng_state(device: torch.device, generators: dict[str, torch.Generator]) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "generators": {k: g.get_state() for k, g in
                                                                             generators.items()}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    for name, g in generators.items():
        g.set_state(state["generators"][name])


def save_state(path: Path, *, epoch: int, plan: dict[str, Any], adapter: dict[str, torch.Tensor],
               optimizer: Any, scheduler: Any, rng: dict[str, Any], loss: float,
               objective: dict[str, Any] | None = None) -> None:
    """``objective``: the state of the objective's own stateful parts (``Objective.stateful``), by name."""
    buffer = io.BytesIO()
    torch.save({"version": STATE_VERSION, "epoch": epoch, "plan": plan, "loss": loss,
                "adapter": {k: v.detach().cpu() for k, v in adapter.items()},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng,
                "objective": objective or {}}, buffer)
    write_atomic(path, buffer.getvalue())


def load_state(path: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """The saved state; ``ConfigError`` when it was written for another plan (naming the differences)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable training state ({type(exc).__name__}: {exc}); delete "
                              "it and pass --overwrite to start the seed again") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path} is not a training state of this prompt-plugins version; pass --overwrite "
                              "to start again")
    saved = state["plan"]
    diffs = sorted(k for k in set(saved) | set(plan) if saved.get(k) != plan.get(k))
    if diffs:
        detail = "; ".join(f"{k}: {saved.get(k)!r} saved vs {plan.get(k)!r} now" for k in diffs[:4])
        raise ConfigError(f"--resume: {path} was written by a run with other settings ({detail}); resume with the "
                          "same arguments, or pass --overwrite to start again")
    return state


def peek_epoch(path: Path) -> int | None:
    """The epochs done of a saved state (None when unreadable)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:
        return None
