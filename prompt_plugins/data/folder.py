"""Folder-per-class layouts: ImageNet's (``images/{train,val}/<wnid>/*`` + ``classnames.txt``) and the generic
``imagefolder`` (``ROOT/{train,val,test}/<class>/*``). Labels follow the sorted folder names (as CoOp's ImageNet
reader does); the items of a class are sorted by name (Dassl lists them in ``os.listdir`` order, which depends on
the file system, so ImageNet's few-shot draws are reproducible here but not equal to a given Dassl run's)."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .splits import (IMAGE_EXTS, VIDEO_EXTS, Item, Splits, checked_classnames, need_dir, need_file, read_text,
                     sample_kind)


def read_folder_classnames(path: Path) -> dict[str, str]:
    """ImageNet's ``classnames.txt``: ``<folder> <class name words>`` per line -> {folder: name}."""
    need_file(path, "class-name file", "it lists '<folder> <class name>' per line (CoOp's ImageNet classnames.txt)")
    out: dict[str, str] = {}
    lines: dict[str, int] = {}
    for n, line in enumerate(read_text(path, "class-name file").splitlines(), 1):
        if not line.strip():
            continue
        folder, _, name = line.strip().partition(" ")
        if not name.strip():
            raise ConfigError(f"{path}:{n}: {line!r} has no class name; expected '<folder> <class name>'")
        if folder in lines:  # the last line would win: one class trained under another's name
            raise ConfigError(f"{path}:{n}: folder {folder!r} is listed twice (lines {lines[folder]} and {n}: "
                              f"{out[folder]!r} and {name.strip()!r}); keep one '<folder> <class name>' line per folder")
        out[folder], lines[folder] = name.strip(), n
    if not out:
        raise ConfigError(f"class-name file {str(path)!r} is empty; write one '<folder> <class name>' line per class "
                          "folder")
    return out


def class_folders(split_dir: Path) -> list[Path]:
    folders = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise ConfigError(f"{str(split_dir)!r} has {len(folders)} class folder(s); expected ROOT/<split>/<class>/"
                          "<items> with at least 2 classes")
    return folders


def folder_items(folder: Path, label: int) -> list[Item]:
    """Images, video files or frame folders of one class folder, sorted by name."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                     and (p.is_dir() or p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS))
    if not entries:
        raise ConfigError(f"class folder {str(folder)!r} is empty; it needs images, frame folders or videos "
                          f"({', '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})")
    return [Item(str(p), label) for p in entries]


def read_split_folder(split_dir: Path, labels: dict[str, int]) -> list[Item]:
    """Items of ``split_dir/<folder>/*`` for the folders in ``labels``; a folder not in it is an error."""
    items: list[Item] = []
    for folder in class_folders(split_dir):
        if folder.name not in labels:
            raise ConfigError(f"class folder {str(folder)!r} is not a class of the training split; every split "
                              "must use the training split's class folders")
        items += folder_items(folder, labels[folder.name])
    return items


def read_image_folder(name: str, root: Path, *, train: str = "train", test: str = "test", val: str | None = "val",
                      classnames: Path | None = None, exact_classnames: bool = True) -> Splits:
    """``root/<train>/<class>/*`` and ``root/<test>/<class>/*`` (``<val>`` optional). Class names: the
    ``classnames`` file (``<folder> <name>`` lines) or the folder names with '_' read as a space.
    ``exact_classnames``: a line for a folder the data lacks is an error (False for ImageNet's released
    ``classnames.txt``, which lists all 1000 classes whatever subset is on disk)."""
    need_dir(root, f"{name} folder", f"expected {root}/{train}/<class>/<items> and {root}/{test}/<class>/<items>")
    train_dir = need_dir(root / train, f"{name} training split", f"create {root / train}/<class>/<items>")
    test_dir = need_dir(root / test, f"{name} test split", f"create {root / test}/<class>/<items>")
    folders = class_folders(train_dir)
    mapping = read_folder_classnames(classnames) if classnames is not None else {}
    missing = [f.name for f in folders if classnames is not None and f.name not in mapping]
    if missing:
        raise ConfigError(f"{classnames} has no class name for the folders {missing[:5]}; add a "
                          "'<folder> <class name>' line for each")
    extra = sorted(set(mapping) - {f.name for f in folders}) if exact_classnames else []
    if extra:  # a typo in the file, or a class whose folder is missing: the names would vanish silently
        raise ConfigError(f"{classnames} names folders that {str(train_dir)!r} lacks: {extra[:5]}"
                          f"{' ...' if len(extra) > 5 else ''}; fix the folder names in the file or add the folders")
    names = [mapping.get(f.name, f.name.replace("_", " ")) for f in folders]
    seen: dict[str, str] = {}
    for f, classname in zip(folders, names):
        if classname in seen:  # 'red circle' and 'red_circle' would be two labels with one prompt
            raise ConfigError(f"class folders {seen[classname]!r} and {f.name!r} in {str(train_dir)!r} both read as "
                              f"the class {classname!r} ('_' reads as a space): rename or merge them")
        seen[classname] = f.name
    checked_classnames(names, f"class-name file {str(classnames)!r}" if classnames is not None
                       else f"class folders of {str(train_dir)!r}")
    labels = {f.name: i for i, f in enumerate(folders)}
    train_items = [it for f in folders for it in folder_items(f, labels[f.name])]
    val_items = read_split_folder(root / val, labels) if val and (root / val).is_dir() and val != test else []
    splits = Splits(name, names, train_items, read_split_folder(test_dir, labels), val_items,
                    source={"train": str(train_dir), "test": str(test_dir)})
    splits.kind = sample_kind(splits.train, str(train_dir))
    return splits
