"""Importers for checkpoints released by other code bases (CoOp, DPC, ViFi-CLIP, GA2-CLIP).

An importer is a pure key remap ``remap(obj, options, source, **files) -> (AdapterConfig, tensors)`` over the
object read from a checkpoint file, plus ``matches(obj)`` for format detection; it lives with its method
(``methods/<name>/importer.py``) and registers itself. This module holds the registry and the one
``convert`` that locates and reads the files (``reader.read_checkpoint``: tensors only, no code runs),
remaps and writes an adapter directory that ``from_pretrained`` loads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import Tensor

from ..checkpoint import AdapterConfig, RawAdapter, save_pretrained
from ..config import Config, split_options
from ..errors import CheckpointError, ConfigError, UnsafeCheckpointError
from .reader import read_checkpoint, read_tensors_only, safe_load

__all__ = ["Importer", "IMPORTERS", "register_importer", "get_importer", "detect_format", "formats_matching", "convert",
           "safe_load", "read_checkpoint", "read_tensors_only"]


def _same_path(path: Path, epoch: int | None = None) -> Path:
    return path


@dataclass(frozen=True)
class Importer:
    """name: the ``--format``; matches(obj): does the read object look like this format; remap: see the
    module docstring; options: the typed config of its keyword options; files: options that name further
    checkpoint files (read like the main one before ``remap``) -> the option giving their epoch; locate(path,
    epoch): a run directory -> its checkpoint file; detectable: tried by ``detect_format``."""

    name: str
    matches: Callable[[Any], bool]
    remap: Callable[..., tuple[AdapterConfig, dict[str, Tensor]]]
    options: type[Config]
    files: Mapping[str, str | None] = field(default_factory=dict)
    locate: Callable[[Path, int | None], Path] = _same_path
    detectable: bool = True
    doc: str = ""

    def detect(self, path: str | os.PathLike) -> bool:
        """True when ``path`` (a file, or a run directory for CoOp-style runs) reads as this format."""
        try:
            return self.detectable and bool(self.matches(read_checkpoint(self.locate(Path(path), None))))
        except (CheckpointError, ConfigError):
            return False

    def convert(self, src: str | os.PathLike, out_dir: str | os.PathLike, **options: Any) -> Path:
        """``convert(src, out_dir, format=self.name, **options)``."""
        return convert(src, out_dir, format=self.name, **options)


IMPORTERS: dict[str, Importer] = {}


def register_importer(importer: Importer) -> Importer:
    IMPORTERS[importer.name] = importer
    return importer


def get_importer(name: str) -> Importer:
    if name not in IMPORTERS:
        raise ConfigError(f"unknown checkpoint format {name!r}; known: {sorted(IMPORTERS)}")
    return IMPORTERS[name]


def formats_matching(obj: Any, exclude: str | None = None) -> list[str]:
    """The detectable formats whose ``matches`` accepts the read ``obj`` (for an importer's error naming the
    ``--format`` a file it refuses really is)."""
    return [i.name for i in IMPORTERS.values() if i.detectable and i.name != exclude and i.matches(obj)]


def _detect(path: Path, allow_unsafe: bool = False) -> tuple[Importer, Path, Any]:
    """The one detectable importer whose ``matches`` accepts ``path``; each located file is read once.
    A file the reader refuses (it needs code to load) is reported as such, not as an unknown format."""
    read: dict[Path, Any] = {}
    unreadable: list[CheckpointError] = []
    found = []
    for importer in IMPORTERS.values():
        if not importer.detectable:
            continue
        try:
            file = importer.locate(path, None)
        except CheckpointError:
            continue
        if file not in read:
            try:
                read[file] = read_checkpoint(file, allow_unsafe=allow_unsafe)
            except UnsafeCheckpointError:
                raise
            except CheckpointError as exc:
                read[file] = None
                unreadable.append(exc)
        if read[file] is not None and importer.matches(read[file]):
            found.append((importer, file))
    if not found and unreadable and all(obj is None for obj in read.values()):
        raise unreadable[0]  # no file could be read at all: say why, not "no known format"
    if len(found) != 1:
        what = "no known format" if not found else f"several formats {[i.name for i, _ in found]}"
        raise CheckpointError(f"{path}: {what} matched; pass --format {{{','.join(sorted(IMPORTERS))}}}")
    importer, file = found[0]
    return importer, file, read[file]


def detect_format(path: str | os.PathLike) -> str:
    """The name of the format of ``path`` (see ``_detect``)."""
    return _detect(Path(path))[0].name


def convert(src: str | os.PathLike, out_dir: str | os.PathLike, format: str | None = None, *,
            allow_unsafe: bool = False, overwrite: bool = True, **options: Any) -> Path:
    """Convert the checkpoint ``src`` (detected format unless ``format``) into an adapter directory
    (``overwrite=False``: refuse one that already holds an adapter)."""
    path = Path(src)
    importer, file, obj = _detect(path, allow_unsafe) if format is None else (get_importer(format), None, None)
    (given,) = split_options("format", importer.name, options, (importer.options,))
    opts = importer.options(**given)
    if file is None:
        file = importer.locate(path, getattr(opts, "epoch", None))
        obj = read_checkpoint(file, allow_unsafe=allow_unsafe)
    files = {}
    for name, epoch_option in importer.files.items():
        value = getattr(opts, name)
        if isinstance(value, (str, os.PathLike)):
            epoch = getattr(opts, epoch_option) if epoch_option else None
            value = read_checkpoint(importer.locate(Path(value), epoch), allow_unsafe=allow_unsafe)
        files[name] = value
    config, tensors = importer.remap(obj, opts, file, **files)
    report = {"source": str(file), "format": importer.name, **(config.imported_from or {})}
    return save_pretrained(RawAdapter(config.replace(imported_from=report), tensors), out_dir, overwrite=overwrite)
