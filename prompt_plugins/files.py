"""Files on disk, handled safely: atomic writes whose mode follows the umask, a lock per adapter directory, and
header checks that refuse a bogus file before anything reads it whole.

``directory_lock`` takes ``flock`` on the directory itself (no lock file is left behind): writers hold it
exclusively, readers shared, so a reader never sees the weights of one save with the config of another and two
writers end with one complete adapter. Where ``flock`` is not available the lock is a no-op; the SHA-256 in
the config still refuses a mixed pair.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import CheckpointError

#: a ``safetensors`` JSON header larger than this is refused unread (real ones are kilobytes)
MAX_HEADER_BYTES = 100 * 2**20
#: pickle protocols ``torch.save`` writes in its legacy (non-zip) format; protocol 2 is its default
PICKLE_PROTOCOLS = range(2, 6)


def describe_os_error(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def ensure_directory(directory: Path, what: str) -> Path:
    """Create ``directory`` (and parents); a symlink loop, a file in the way or an unwritable parent is a
    ``CheckpointError``."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        loop = exc.errno == errno.ELOOP or (directory.is_symlink() and not directory.exists())
        reason = "a symbolic link that loops or points nowhere" if loop else describe_os_error(exc)
        raise CheckpointError(f"cannot create {what} {str(directory)!r}: {reason}; pass another folder") from None
    return directory


def check_writable_target(path: Path) -> None:
    """``path`` may be replaced by a file: it is missing or a regular file (not a directory or a socket)."""
    if (path.exists() or path.is_symlink()) and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise CheckpointError(f"{str(path)!r} is {kind}, so the file {path.name} cannot be written there; "
                              "remove or rename it, or save into another folder")


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix. The file is
    created with mode 0o666 less the umask, as ``open()`` would create it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise CheckpointError(f"cannot write into {str(path.parent)!r}: {describe_os_error(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def directory_lock(directory: Path, *, shared: bool) -> Iterator[None]:
    """Hold ``flock`` on ``directory`` (shared for readers, exclusive for writers) inside the block."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # unreadable folder: its files fail with their own clear errors
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        except OSError:  # pragma: no cover - a file system without flock: the SHA-256 check remains
            pass
        yield
    finally:
        os.close(fd)


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with the header of the ``.safetensors`` file ``path`` (read without reading the data),
    or None: the header must be a JSON object whose tensors' byte ranges end exactly at the end of the file."""
    size = path.stat().st_size
    if size < 10:
        return f"{size} bytes, too short for the 8-byte header length and a JSON header"
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if not 2 <= n <= min(size - 8, MAX_HEADER_BYTES):
            return f"its first 8 bytes declare a {n}-byte JSON header, impossible in a {size}-byte file"
        head = f.read(n)
    try:
        meta = json.loads(head)
    except ValueError:
        return f"its {n}-byte header is not JSON (it starts with {head[:16]!r})"
    if not isinstance(meta, dict):
        return f"its header is a JSON {type(meta).__name__}, not an object"
    end = 0
    for name, entry in meta.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            return f"the header entry of tensor {name!r} has no valid data_offsets"
        end = max(end, offsets[1])
    if end != size - 8 - n:
        return f"the header declares {end} bytes of tensor data but the file holds {size - 8 - n}"
    return None


def torch_file_kind(path: Path) -> str:
    """``"zip"`` (``torch.save`` since 1.6, TorchScript), ``"pickle"`` (legacy ``torch.save``) or
    ``"safetensors"``, told from the first bytes (and a zip's directory at its end) without reading the file;
    anything else is a ``CheckpointError`` naming the bytes found."""
    head = _head(path, 8)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        if zipfile.is_zipfile(path):
            return "zip"
        problem = "it starts like a zip archive but has no valid zip directory (truncated or corrupt)"
    elif safetensors_problem(path) is None:  # strict (JSON header, exact size): checked before the pickle byte
        return "safetensors"
    elif len(head) >= 2 and head[0] == 0x80 and head[1] in PICKLE_PROTOCOLS:
        return "pickle"
    else:
        problem = f"it starts with the bytes {head!r}"
    raise CheckpointError(
        f"{str(path)!r} is not a PyTorch checkpoint ({problem}): torch.save writes a zip archive (bytes 'PK') or a "
        "pickle (byte 0x80), safetensors a JSON header. Check the path; the file may be truncated or not a "
        "checkpoint at all")
