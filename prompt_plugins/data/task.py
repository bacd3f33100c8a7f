"""One base-to-new task: a data set in its published layout, its few-shot base training set for a seed, and
the test items of the base and the new classes. What ``train`` trains on, what ``eval`` measures, and the
facts an adapter records (``Task.record()``) so that ``eval`` can check it measures the same split."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import check_int
from ..errors import ConfigError
from .coop import COOP_DATASETS, coop_layout, read_coop
from .fewshot import base_new_labels, fewshot_items
from .folder import read_image_folder
from .splits import Item, Splits
from .vifi import VIFI_DATASETS, read_vifi

#: the generic layout ROOT/{train,val,test}/<class>/<items>
FOLDER = "imagefolder"
DATASET_NAMES = sorted(COOP_DATASETS) + sorted(VIFI_DATASETS) + [FOLDER]


@dataclass
class Task:
    """classnames by global label; base / new: global labels; train: the few-shot items of the base classes;
    test_base / test_new: the test items of each half. Labels stay global throughout."""

    dataset: str
    protocol: str
    classnames: list[str]
    base: list[int]
    new: list[int]
    train: list[Item]
    test_base: list[Item]
    test_new: list[Item]
    kind: str
    shots: int
    seed: int
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def base_names(self) -> list[str]:
        return [self.classnames[i] for i in self.base]

    @property
    def new_names(self) -> list[str]:
        return [self.classnames[i] for i in self.new]

    def record(self) -> dict[str, Any]:
        """The facts that identify this split (stored in an adapter's ``run`` section)."""
        return {"dataset": self.dataset, "protocol": self.protocol, "shots": self.shots, "seed": self.seed,
                "classnames": list(self.classnames), "base_classes": self.base_names,
                "new_classes": self.new_names, "train_items": len(self.train), "source": dict(self.source)}


def read_splits(dataset: str, root: str | Path, *, seed: int = 1, splits_dir: str | Path | None = None,
                classnames: str | Path | None = None) -> Splits:
    """The data set ``dataset`` (a CoOp name, a ViFi name or "imagefolder") read from ``root``."""
    key = dataset.lower()
    vifi = key.replace("-", "_") in VIFI_DATASETS
    if classnames is not None and key != FOLDER and (vifi or coop_layout(key) is not None):
        raise ConfigError(f"--classnames is for --dataset {FOLDER}; {dataset} names its classes in its own files "
                          f"({'the label CSVs' if vifi else 'the split file'}): drop --classnames")
    if splits_dir is not None and not vifi and (key == FOLDER or coop_layout(key) is not None):
        raise ConfigError(f"--splits is for the ViFi-CLIP video data sets ({sorted(VIFI_DATASETS)}); {dataset} "
                          "reads its splits from --root: drop --splits")
    if coop_layout(key) is not None:
        return read_coop(key, root)
    if vifi:
        if splits_dir is None:
            raise ConfigError(f"--dataset {dataset} needs --splits DIR: a ViFi-CLIP checkout holding "
                              "datasets_splits/base2novel_splits/ and labels/")
        return read_vifi(key, root, splits_dir, seed)
    if key == FOLDER:
        return read_image_folder(FOLDER, Path(root), classnames=Path(classnames) if classnames else None)
    raise ConfigError(f"--dataset {dataset!r} is unknown; use one of {DATASET_NAMES}")


def build_task(splits: Splits, shots: int, seed: int) -> Task:
    """The base-to-new task of ``splits`` with ``shots`` training items per base class drawn for ``seed``
    (Dassl's draw; ViFi's released list when the layout gives it)."""
    check_int("shots", shots, 1)
    if splits.shots_given:
        train = [it for it in splits.train if splits.base is None or it.label in splits.base]
        counts = _counts(train)
        if max(counts.values()) != min(counts.values()) or next(iter(counts.values())) != shots:
            raise ConfigError(f"{splits.name}: the released training list holds {min(counts.values())}-"
                              f"{max(counts.values())} items per class, not --shots {shots}; pass --shots "
                              f"{max(counts.values())} (ViFi's lists are 16-shot)")
    else:
        train = fewshot_items(splits.train, shots, seed)
    if splits.base is not None:
        base = list(splits.base)
        new = [i for i in range(len(splits.classnames)) if i not in set(base)]
    else:
        base, new = base_new_labels([it.label for it in train])
        missing = sorted(set(range(len(splits.classnames))) - set(base) - set(new))
        if missing:
            raise ConfigError(f"{splits.name}: classes {missing[:5]} have no training item; every class needs one")
    if not new:
        raise ConfigError(f"{splits.name} has {len(splits.classnames)} class(es): base-to-new needs at least 2")
    base_set, new_set = set(base), set(new)
    test_base = [it for it in splits.test if it.label in base_set]
    test_new = [it for it in splits.test if it.label in new_set]
    for half, items in (("base", test_base), ("new", test_new)):
        if not items:
            raise ConfigError(f"{splits.name}: the test split has no item of a {half} class")
    protocol = "vifi-base2novel" if splits.shots_given else "coop-base2new"
    return Task(splits.name, protocol, list(splits.classnames), base, new,
                [it for it in train if it.label in base_set], test_base, test_new, splits.kind, shots, seed,
                dict(splits.source))


def _counts(items: list[Item]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for it in items:
        counts[it.label] = counts.get(it.label, 0) + 1
    return counts or {-1: 0}
