"""The one reader of foreign checkpoint files: tensors and plain data only, no code from the file ever runs.

``read_checkpoint`` (what the importers use) reads a ``.safetensors`` file, or a PyTorch pickle with
torch's weights-only unpickler. Training scripts pickle more than tensors next to the weights: Dassl saves
its scheduler's state, which holds a ``CosineAnnealingLR`` object holding the SGD optimiser; ViFi-CLIP a yacs
``CfgNode``. Each object of such a class is read as an inert ``collections.OrderedDict``: its class is never
imported and nothing of it runs; the dict holds what a dict-like class stored, its attributes (``vars(obj)``)
the pickled state, and ``obj.pickled_class`` names the class. A pickle that would *call* something unknown
(a ``REDUCE`` of a function or a class constructor: code the file wants to run) is refused with
``UnsafeCheckpointError`` naming it, unless the caller opts in (``allow_unsafe``).
"""
from __future__ import annotations

import collections
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..errors import CheckpointError, UnsafeCheckpointError
from ..files import torch_file_kind

_UNSUPPORTED = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")
_REFUSAL = ("Refusing: only load it if you trust its source, with allow_unsafe=True (CLI: --allow-unsafe)")


class _Refuse(type):
    """Metaclass of the placeholders: calling one (a pickle REDUCE: code the file wants to run) is refused;
    torch's NEWOBJ calls ``cls.__new__`` directly and gets an inert ``OrderedDict``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise _WouldCall(cls.pickled_class)


def _placeholder(name: str) -> type:
    def __new__(cls: type, *args: Any, **kwargs: Any) -> collections.OrderedDict:
        inert = collections.OrderedDict()  # torch fills dict items (SETITEM) and the state (BUILD) into it
        inert.pickled_class = name
        return inert

    return _Refuse(name.rpartition(".")[2], (), {"__new__": __new__, "pickled_class": name})


def _defaultdict_as_dict(*args: Any) -> dict:
    return {}


#: globals read as something else that only holds data: a defaultdict as a plain dict (its factory, which
#: could be anything, is dropped), the dict type as itself
DATA_GLOBALS = {"collections.defaultdict": _defaultdict_as_dict, "builtins.dict": dict}


class _WouldCall(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _allowed(names: list[str]) -> list[Any]:
    """``DATA_GLOBALS`` as given, every other name as a fresh placeholder class."""
    return [(DATA_GLOBALS.get(name) or _placeholder(name), name) for name in names]


def _check_file(path: str | os.PathLike) -> Path:
    """An existing, non-empty file whose first bytes are a PyTorch checkpoint's (zip or pickle) or safetensors'
    (``files.torch_file_kind``): a bogus file is refused before anything reads it."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint file {str(path)!r} is a directory; pass the checkpoint file in it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file {str(path)!r} is empty (0 bytes)")
    torch_file_kind(path)
    return path


def _weights_only(path: Path) -> Any:
    """torch's weights-only load; a pickle needing code raises ``pickle.UnpicklingError``, an unreadable
    file ``CheckpointError``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, _WouldCall):
        raise
    except Exception as exc:
        message = str(exc)
        if "weights_only" in message or "Unsupported global" in message:
            raise pickle.UnpicklingError(message) from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: "
                              f"{message.splitlines()[0] if message else ''})") from None


def _refusal(path: Path, what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(f"{path} is a pickle that needs arbitrary code to load ({what}). {_REFUSAL}")


def safe_load(path: str | os.PathLike, *, allow_unsafe: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True``; a file that needs any other global raises
    ``UnsafeCheckpointError`` unless ``allow_unsafe=True`` (then it loads with a warning)."""
    path = _check_file(path)
    try:
        return _weights_only(path)
    except pickle.UnpicklingError as exc:
        if not allow_unsafe:
            first = next((line for line in str(exc).splitlines() if "Unsupported global" in line), "")
            raise _refusal(path, first.strip() or "non-tensor objects") from None
    return _unsafe_load(path)


def _unsafe_load(path: Path) -> Any:
    warnings.warn(f"loading {path} with weights_only=False: this runs code stored in the file", stacklevel=3)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a damaged file fails inside torch's unpickler with KeyError, EOFError, ...
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"{path} could not be loaded even with allow_unsafe ({type(exc).__name__}: {first}); "
                              "it may be truncated or corrupt") from None


def read_tensors_only(path: str | os.PathLike) -> Any:
    """The object stored in a PyTorch checkpoint, read by torch's weights-only unpickler, with every object of a
    class it does not allow read as an inert ``OrderedDict`` (see the module docstring). Raises
    ``UnsafeCheckpointError`` when the file would call a function or class it names."""
    path = _check_file(path)
    names: list[str] = []
    if zipfile.is_zipfile(path):  # torch lists the globals of data.pkl without loading anything
        names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    for _ in range(64):  # older (non-zip) files: each unknown global is found by one load
        try:
            with torch.serialization.safe_globals(_allowed(names)):
                return _weights_only(path)
        except _WouldCall as call:
            raise _refusal(path, f"it would call {call.name}(...)") from None
        except pickle.UnpicklingError as exc:
            found = _UNSUPPORTED.search(str(exc))
            if found is None or found.group(1) in names:
                raise _refusal(path, str(exc).splitlines()[0] if str(exc) else "unsupported pickle") from None
            names.append(found.group(1))
    raise _refusal(path, "more than 64 unknown globals")


def read_checkpoint(path: str | os.PathLike, allow_unsafe: bool = False) -> Any:
    """The object stored in ``path``: a ``.safetensors`` file as a dict of tensors, a PyTorch checkpoint
    through :func:`read_tensors_only`. A pickle that would run code is refused unless ``allow_unsafe``
    (then it is loaded with ``weights_only=False`` and a warning)."""
    path = Path(path)
    if path.suffix == ".safetensors" or torch_file_kind(_check_file(path)) == "safetensors":
        from safetensors.torch import load_file

        if not path.is_file():
            raise CheckpointError(f"checkpoint file {str(path)!r} does not exist")
        try:
            return load_file(str(path))
        except Exception as exc:  # SafetensorError and friends
            raise CheckpointError(f"{path} is not a valid safetensors file ({type(exc).__name__}: {exc})") from None
    try:
        return read_tensors_only(path)
    except UnsafeCheckpointError:
        if not allow_unsafe:
            raise
    return _unsafe_load(path)
