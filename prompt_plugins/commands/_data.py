"""Real data for ``train``/``eval``: one folder per class holding images, frame folders (videos) or
video files (only when a decoder is installed). Returns normalised tensors and labels."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from ..errors import ClassNameError, ConfigError
from ..tokenization import check_classnames

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class Dataset:
    """x: (N, 3, S, S) images or (N, T, 3, S, S) videos; y: (N,) class indices into ``classnames``."""

    x: Tensor
    y: Tensor
    classnames: list[str]


def read_classnames(path: str | Path) -> list[str]:
    """One class name per line (blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"class-name file {str(path)!r} does not exist; pass a text file with one name per line")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ConfigError(f"class-name file {str(path)!r} is empty; write one class name per line")
    return _checked(names, f"class-name file {str(path)!r}")


def _checked(names: list[str], where: str) -> list[str]:
    """``check_classnames`` before any data is loaded, its message naming ``where`` the names came from."""
    try:
        return check_classnames(names)
    except ClassNameError as exc:
        raise ClassNameError(f"{where}: {exc}") from None


def class_folders(root: str | Path, classnames: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """(name, folder) per class: folder names sorted, or the order of ``classnames`` (which must
    match the folder names, with '_' read as a space)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"data folder {str(root)!r} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ConfigError(f"data folder {str(root)!r} has no class sub-folders; expected ROOT/<class name>/<images>")
    by_name: dict[str, Path] = {}
    for p in folders:
        name = p.name.replace("_", " ")
        if name in by_name:
            raise ConfigError(f"class folders {by_name[name].name!r} and {p.name!r} in {str(root)!r} both read as "
                              f"the class {name!r} ('_' reads as a space): rename or merge them")
        by_name[name] = p
    _checked(list(by_name), f"class folders of {str(root)!r}")
    if classnames is None:
        pairs = list(by_name.items())
    else:
        missing = [c for c in classnames if c not in by_name]
        if missing:
            raise ConfigError(f"class names {missing[:5]} have no folder in {str(root)!r}; folders: "
                              f"{sorted(by_name)[:10]}")
        pairs = [(c, by_name[c]) for c in classnames]
    if len(pairs) < 2:
        raise ConfigError(f"{str(root)!r} has {len(pairs)} class folder(s); classification needs at least 2")
    return pairs


def _transform(size: int):
    from PIL import Image

    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)

    def apply(img: "Image.Image") -> Tensor:
        img = img.convert("RGB")
        w, h = img.size
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
        data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size, 3)
        return (data.permute(2, 0, 1).float() / 255 - mean) / std

    return apply


def _open(path: Path, transform) -> Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return transform(img)
    except (UnidentifiedImageError, OSError) as exc:
        raise ConfigError(f"cannot read image {str(path)!r} ({type(exc).__name__}: {exc}); "
                          "remove or replace the file") from None


def _video_file(path: Path, transform, frames: int) -> Tensor:
    try:
        from torchvision.io import read_video
        video, _, _ = read_video(str(path), pts_unit="sec", output_format="TCHW")
    except Exception as exc:  # no decoder (PyAV) or unreadable file
        raise ConfigError(f"cannot decode video {str(path)!r} ({type(exc).__name__}: {exc}); install a decoder "
                          "(pip install av) or extract frames into a folder per video") from None
    from PIL import Image

    idx = torch.linspace(0, len(video) - 1, frames).round().long()
    return torch.stack([transform(Image.fromarray(video[i].permute(1, 2, 0).numpy())) for i in idx])


def _frames(folder: Path, transform, frames: int) -> Tensor:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise ConfigError(f"video frame folder {str(folder)!r} holds no images")
    idx = torch.linspace(0, len(files) - 1, frames).round().long().tolist()
    return torch.stack([_open(files[i], transform) for i in idx])


def load_folder(root: str | Path, image_size: int, *, classnames: Sequence[str] | None = None,
                frames: int = 8, shots: int | None = None, seed: int = 0, progress: bool = True) -> Dataset:
    """Load ``root/<class>/*``: images, frame folders or video files (one kind per data set).
    ``shots`` keeps the first ``shots`` items per class after a seeded shuffle."""
    from tqdm.auto import tqdm

    pairs = class_folders(root, classnames)
    transform = _transform(image_size)
    items: list[tuple[int, Path]] = []
    g = torch.Generator().manual_seed(seed)
    for label, (name, folder) in enumerate(pairs):
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                         and (p.is_dir() or p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS))
        if not entries:
            raise ConfigError(f"class folder {str(folder)!r} ({name!r}) is empty; it needs images, frame folders "
                              f"or videos ({', '.join(sorted(IMAGE_EXTS))})")
        if shots is not None:
            entries = [entries[i] for i in torch.randperm(len(entries), generator=g)[:shots].tolist()]
        items += [(label, p) for p in entries]
    kinds = {("frames" if p.is_dir() else "video" if p.suffix.lower() in VIDEO_EXTS else "image") for _, p in items}
    if len(kinds) > 1:
        raise ConfigError(f"{str(root)!r} mixes {sorted(kinds)}; use one kind of input per data set")
    kind = kinds.pop()
    xs = []
    for _, path in tqdm(items, desc=f"loading {kind}s", disable=not progress, leave=False):
        if kind == "image":
            xs.append(_open(path, transform))
        elif kind == "frames":
            xs.append(_frames(path, transform, frames))
        else:
            xs.append(_video_file(path, transform, frames))
    return Dataset(torch.stack(xs), torch.tensor([y for y, _ in items]), [n for n, _ in pairs])
