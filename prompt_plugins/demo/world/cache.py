"""The demo's on-disk cache: where it lives, and tensors written whole or not at all and read back without
running code (the pretrained tiny CLIP, GA2's hard prompt)."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Callable

import torch

from ...errors import CheckpointError
from ...files import write_atomic


def cache_dir() -> Path:
    """``$PROMPT_PLUGINS_CACHE``, else ``$XDG_CACHE_HOME/prompt-plugins``, else ``~/.cache/prompt-plugins``."""
    if os.environ.get("PROMPT_PLUGINS_CACHE"):
        return Path(os.environ["PROMPT_PLUGINS_CACHE"])
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "prompt-plugins"


def read_cached(path: Path, what: str) -> Any:
    """Tensors saved by ``write_cached`` (``weights_only``); an unreadable file is a ``CheckpointError`` that
    names ``what`` and says to delete it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cached {what} {path} is unreadable ({exc}); delete it to retrain") from None


def write_cached(path: Path, obj: Any, log: Callable[[str], Any] = print) -> bool:
    """``torch.save(obj)`` to ``path`` atomically (readers see the old file or the whole new one). A cache that
    cannot be written (read-only, full, not a folder) is reported through ``log`` and the run goes on without
    it; returns whether the file was written."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buffer.getvalue())
    except (OSError, CheckpointError) as exc:
        log(f"warning: could not cache {path.name} in {str(path.parent)!r} ({exc}); going on without the cache")
        return False
    return True
