"""What every data-set reader returns: items (a file or a frame folder, a label) per split, the class names by
label, and small file helpers whose errors name the path and the fix."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ClassNameError, ConfigError
from ..tokenization import check_classnames

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm"})


@dataclass(frozen=True)
class Item:
    """One sample: ``path`` (an image, a video file or a folder of frames) and its class ``label``."""

    path: str
    label: int


@dataclass
class Splits:
    """A data set as its readers find it on disk. ``classnames[label]``; ``kind`` "image" or "video";
    ``base``: the base labels when the data set defines them (ViFi's label files), else None (CoOp's rule:
    the first half); ``shots_given``: the few-shot training list is a file of the layout (ViFi), not drawn;
    ``source``: the files read, for the run record."""

    name: str
    classnames: list[str]
    train: list[Item]
    test: list[Item]
    val: list[Item] = field(default_factory=list)
    kind: Literal["image", "video"] = "image"
    base: list[int] | None = None
    shots_given: bool = False
    source: dict[str, Any] = field(default_factory=dict)


def need_dir(path: Path, what: str, fix: str) -> Path:
    if not path.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is not a folder; {fix}")
    return path


def need_file(path: Path, what: str, fix: str) -> Path:
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} {'is a folder' if path.is_dir() else 'does not exist'}; {fix}")
    return path


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {str(path)!r} is not valid JSON ({exc}); download it again") from None


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file, a leading byte-order mark dropped (Windows editors write one; read as text it would
    become part of the first line)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text ({exc}); save it as UTF-8") from None


def read_classnames(path: str | Path) -> list[str]:
    """One class name per line (blank lines ignored)."""
    path = need_file(Path(path), "class-name file", "pass a text file with one class name per line")
    names = [line.strip() for line in read_text(path, "class-name file").splitlines() if line.strip()]
    if not names:
        raise ConfigError(f"class-name file {str(path)!r} is empty; write one class name per line")
    return checked_classnames(names, f"class-name file {str(path)!r}")


def checked_classnames(names: list[str], where: str) -> list[str]:
    """``check_classnames`` (no two names alike once case and spaces are normalised) before any data is loaded,
    the message naming ``where`` the names came from."""
    try:
        return check_classnames(names)
    except ClassNameError as exc:
        raise ClassNameError(f"{where}: {exc}") from None


def names_by_label(pairs: list[tuple[int, str]], where: str) -> list[str]:
    """Class names indexed by label from (label, name) pairs: labels must be 0..C-1, one name each."""
    names: dict[int, str] = {}
    for label, name in pairs:
        if names.setdefault(label, name) != name:
            raise ConfigError(f"{where}: label {label} has two class names, {names[label]!r} and {name!r}")
    if sorted(names) != list(range(len(names))):
        missing = sorted(set(range(max(names, default=-1) + 1)) - set(names))
        raise ConfigError(f"{where}: labels must be 0..C-1 without gaps; missing {missing[:10]}")
    return [names[i] for i in range(len(names))]


def sample_kind(items: list[Item], where: str) -> Literal["image", "video"]:
    """"image" when the first item is an image file, else "video" (a video file or a frame folder)."""
    if not items:
        raise ConfigError(f"{where} holds no items")
    return "image" if Path(items[0].path).suffix.lower() in IMAGE_EXTS else "video"
