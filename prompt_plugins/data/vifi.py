"""ViFi-CLIP's base-to-novel video splits (muzairkhattak/ViFi-CLIP): ``datasets_splits/base2novel_splits/
<x>_splits/{fs_base_s1_train,fs_base_s2_train,fs_base_s3_train,base_val,novel_val}.txt`` with lines
``<relative video path> <label>`` (labels 0-based within the base or the novel list) and the label CSVs
``labels/<x>_base_labels.csv`` / ``_novel_labels.csv`` (header ``id,name``). Base and novel classes are the
CSVs' lists, not halves of a sorted list. The 16-shot training list of seed s is ``fs_base_s{s}_train.txt``;
base accuracy is measured on ``base_val``, novel accuracy on ``novel_val`` (as ViFi's eval configs do).
Here labels are global: base classes 0..B-1, then novel B..B+N-1. A path may name a video file or, with
its extension dropped, a folder of frames."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .splits import Item, Splits, need_dir, need_file


@dataclass(frozen=True)
class VifiLayout:
    """split_dir under ``datasets_splits/base2novel_splits``; base / novel label CSVs under ``labels``."""

    name: str
    split_dir: str
    base_csv: str
    novel_csv: str


VIFI_DATASETS: dict[str, VifiLayout] = {
    "k400": VifiLayout("K400", "k400_splits", "kinetics_400_base_labels.csv", "kinetics_400_novel_labels.csv"),
    "hmdb51": VifiLayout("HMDB51", "hmdb_splits", "hmdb_51_base_labels.csv", "hmdb_51_novel_labels.csv"),
    "ucf101_video": VifiLayout("UCF101-video", "ucf_splits", "ucf_101_base_labels.csv", "ucf_101_novel_labels.csv"),
    "ssv2": VifiLayout("SSv2", "ssv2_splits", "ssv2_174_base_labels.csv", "ssv2_174_novel_labels.csv"),
}
#: ViFi's released few-shot training lists: seeds 1, 2, 3
VIFI_SEEDS = (1, 2, 3)


def read_label_csv(path: Path) -> list[str]:
    """``id,name`` rows (header first) -> names by id; ids must be 0..N-1."""
    need_file(path, "label file", "it comes with ViFi-CLIP (labels/*.csv); pass --splits DIR of a ViFi-CLIP checkout")
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["id", "name"]:
        raise ConfigError(f"{path} must be a CSV with the header 'id,name'")
    names: dict[int, str] = {}
    for n, row in enumerate(rows[1:], 2):
        try:
            names[int(row[0])] = ",".join(row[1:]).strip()
        except (ValueError, IndexError):
            raise ConfigError(f"{path}:{n}: {row!r} is not an 'id,name' row") from None
    if sorted(names) != list(range(len(names))):
        raise ConfigError(f"{path}: ids must be 0..{len(names) - 1} without gaps")
    return [names[i] for i in range(len(names))]


def read_split_list(path: Path, videos: Path, offset: int, n_classes: int) -> list[Item]:
    """``<relative path> <label>`` lines -> items with label + ``offset``."""
    need_file(path, "ViFi split file", "it comes with ViFi-CLIP (datasets_splits/base2novel_splits/)")
    items = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.strip().split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ConfigError(f"{path}:{n}: {line!r} is not '<relative path> <label>'")
        label = int(parts[1])
        if not 0 <= label < n_classes:
            raise ConfigError(f"{path}:{n}: label {label} is out of range for the {n_classes} classes of its CSV")
        items.append(Item(str(videos / parts[0]), label + offset))
    if not items:
        raise ConfigError(f"ViFi split file {str(path)!r} is empty")
    return items


def read_vifi(name: str, videos: str | Path, splits_dir: str | Path, seed: int) -> Splits:
    """ViFi's base-to-novel split of ``name`` for ``seed`` (1, 2 or 3): ``videos`` holds the paths of the
    lists; ``splits_dir`` is a ViFi-CLIP checkout (``datasets_splits/`` and ``labels/``)."""
    layout = VIFI_DATASETS.get(name.lower().replace("-", "_"))
    if layout is None:
        raise ConfigError(f"{name!r} is not one of ViFi-CLIP's base-to-novel data sets: {sorted(VIFI_DATASETS)}")
    if seed not in VIFI_SEEDS:
        raise ConfigError(f"--seed {seed}: ViFi-CLIP releases the few-shot training lists of seeds {list(VIFI_SEEDS)} "
                          f"only (fs_base_s{{1,2,3}}_train.txt); pass one of them")
    videos, top = Path(videos), Path(splits_dir)
    need_dir(videos, f"{layout.name} video folder", "--root must be the folder the split files' paths are relative to")
    lists = need_dir(top / "datasets_splits" / "base2novel_splits" / layout.split_dir, "ViFi split folder",
                     "--splits must be a ViFi-CLIP checkout holding datasets_splits/ and labels/")
    base_names = read_label_csv(top / "labels" / layout.base_csv)
    novel_names = read_label_csv(top / "labels" / layout.novel_csv)
    nb = len(base_names)
    train = read_split_list(lists / f"fs_base_s{seed}_train.txt", videos, 0, nb)
    test = (read_split_list(lists / "base_val.txt", videos, 0, nb)
            + read_split_list(lists / "novel_val.txt", videos, nb, len(novel_names)))
    dup = set(base_names) & set(novel_names)
    if dup:
        raise ConfigError(f"{layout.name}: classes {sorted(dup)[:5]} are both base and novel in the label CSVs")
    return Splits(layout.name, base_names + novel_names, train, test, kind="video", base=list(range(nb)),
                  shots_given=True, source={"splits": str(lists), "train_list": f"fs_base_s{seed}_train.txt",
                                            "base_csv": layout.base_csv, "novel_csv": layout.novel_csv})
