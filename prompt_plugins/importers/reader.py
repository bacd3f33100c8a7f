"""The one reader of foreign checkpoint files: tensors only, no code from the file ever runs.

``safe_load`` is ``torch.load(weights_only=True)``; ``read_checkpoint`` also accepts the config objects
training scripts pickle next to the weights (yacs ``CfgNode``, ``argparse.Namespace``), read as inert
dicts, and ``.safetensors`` files. Anything else that needs code is refused unless the caller opts in.
"""
from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UnsafeCheckpointError

#: config classes that training scripts pickle next to the weights; read as inert OrderedDicts
INERT_CONFIG_GLOBALS = ("yacs.config.CfgNode", "argparse.Namespace")


def safe_load(path: str | os.PathLike, *, allow_unsafe: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True``; a file that needs arbitrary code raises
    ``UnsafeCheckpointError`` unless ``allow_unsafe=True`` (then it loads with a warning)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file {str(path)!r} is empty (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError and friends
        message = str(exc)
        if "weights_only" not in message and "Unsupported global" not in message:
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: "
                                  f"{message.splitlines()[0] if message else ''})") from None
        if not allow_unsafe:
            first = next((line for line in message.splitlines() if "Unsupported global" in line), "")
            raise UnsafeCheckpointError(
                f"{path} is a pickle that needs arbitrary code to load ({first.strip() or 'non-tensor objects'}). "
                "Refusing: only load it if you trust its source, with allow_unsafe=True "
                "(CLI: --allow-unsafe)") from None
    warnings.warn(f"loading {path} with weights_only=False: this runs code stored in the file", stacklevel=2)
    return torch.load(path, map_location="cpu", weights_only=False)


class _InertConfig:
    """Stands in for a pickled config class: unpickles to a plain ``OrderedDict``, running no code
    from the file (the weights-only unpickler only calls this ``__new__``)."""

    def __new__(cls, *args: Any) -> OrderedDict:  # type: ignore[misc]
        return OrderedDict()


def read_tensors_only(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` that also accepts the known config classes in
    ``INERT_CONFIG_GLOBALS`` (as inert dicts). Anything else still raises ``UnsafeCheckpointError``."""
    from torch.serialization import safe_globals

    with safe_globals([(_InertConfig, name) for name in INERT_CONFIG_GLOBALS]):
        return safe_load(path)


def read_checkpoint(path: str | os.PathLike, allow_unsafe: bool = False) -> Any:
    """The object stored in ``path``: a ``.safetensors`` file as a dict of tensors, a PyTorch checkpoint
    weights-only (pickled yacs/argparse configs as inert dicts). Other non-tensor globals are refused
    unless ``allow_unsafe`` (then loaded with a warning)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        if not path.is_file():
            raise CheckpointError(f"checkpoint file {str(path)!r} does not exist")
        try:
            return load_file(str(path))
        except Exception as exc:  # SafetensorError and friends
            raise CheckpointError(f"{path} is not a valid safetensors file ({type(exc).__name__}: {exc})") from None
    try:
        return safe_load(path)
    except UnsafeCheckpointError:
        pass
    try:
        return read_tensors_only(path)
    except UnsafeCheckpointError:
        if not allow_unsafe:
            raise
    return safe_load(path, allow_unsafe=True)
