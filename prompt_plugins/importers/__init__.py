"""Importers for checkpoints released by other code bases (CoOp, DPC, ViFi-CLIP, GA2-CLIP).

Each importer module registers itself with ``register_importer``: a name, a ``detect(path)``
predicate used when ``--format`` is omitted, and ``convert(path, out_dir, **options)`` that
writes an adapter directory ``from_pretrained`` loads. Files are read with
``torch.load(weights_only=True)`` (see ``safe_load``); a pickle that needs arbitrary code is
refused unless the caller opts in.
"""
from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import CheckpointError, ConfigError, UnsafeCheckpointError


@dataclass(frozen=True)
class Importer:
    name: str
    detect: Callable[[Path], bool]
    convert: Callable[..., Path]
    doc: str = ""


IMPORTERS: dict[str, Importer] = {}
#: modules that register importers; imported lazily by ``get_importer`` / ``detect_format``
IMPORTER_MODULES: list[str] = []
IMPORTER_MODULES.append("prompt_plugins.importers.dpc")  # CoOp and CoOp+DPC checkpoints
IMPORTER_MODULES += ["prompt_plugins.importers.vificlip", "prompt_plugins.importers.ga2"]


class RawAdapter:
    """A config + tensors pair that ``save_pretrained`` can write (what an importer produces)."""

    def __init__(self, config: dict[str, Any], state: dict[str, "torch.Tensor"]):
        self._config, self._state = config, state

    def adapter_config(self) -> dict[str, Any]:
        return self._config

    def adapter_state_dict(self) -> dict[str, "torch.Tensor"]:
        return self._state


def register_importer(name: str, detect: Callable[[Path], bool], convert: Callable[..., Path], doc: str = "") -> None:
    IMPORTERS[name] = Importer(name, detect, convert, doc)


def _load_all() -> None:
    for module in IMPORTER_MODULES:
        importlib.import_module(module)


def get_importer(name: str) -> Importer:
    _load_all()
    if name not in IMPORTERS:
        raise ConfigError(f"unknown checkpoint format {name!r}; known: {sorted(IMPORTERS)}")
    return IMPORTERS[name]


def detect_format(path: str | os.PathLike) -> str:
    _load_all()
    path = Path(path)
    found = [name for name, imp in IMPORTERS.items() if imp.detect(path)]
    if len(found) != 1:
        what = "no known format" if not found else f"several formats {found}"
        raise CheckpointError(f"{path}: {what} matched; pass --format {{{','.join(sorted(IMPORTERS))}}}")
    return found[0]


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
