"""The 11 image data sets of CoOp's base-to-new benchmark in CoOp's own layout (KaiyangZhou/CoOp ``DATASETS.md``,
``datasets/*.py``): ``ROOT/<dataset_dir>/`` holding the image folder and ``split_zhou_<Name>.json``
(``{"train"|"val"|"test": [[relpath, label, classname], ...]}``, paths relative to the image folder; StanfordCars
to ``dataset_dir``). ImageNet has no split file (``images/{train,val}`` + ``classnames.txt``; val is the test
set) and FGVCAircraft uses its own ``variants.txt`` + ``images_variant_{train,val,test}.txt`` lists."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError
from .folder import read_image_folder
from .splits import Item, Splits, names_by_label, need_dir, need_file, read_json


@dataclass(frozen=True)
class CoopLayout:
    """name: CoOp's dataset class (``DATASET.NAME``); dataset_dir under ROOT; image_dir under it ("" for paths
    relative to dataset_dir); split_file: the JSON split (None: the special layout ``layout``)."""

    name: str
    dataset_dir: str
    image_dir: str
    split_file: str | None
    layout: Literal["json", "imagenet", "fgvc"] = "json"


COOP_DATASETS: dict[str, CoopLayout] = {d.dataset_dir.replace("-", "").replace("_", ""): d for d in (
    CoopLayout("ImageNet", "imagenet", "images", None, "imagenet"),
    CoopLayout("Caltech101", "caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json"),
    CoopLayout("OxfordPets", "oxford_pets", "images", "split_zhou_OxfordPets.json"),
    CoopLayout("StanfordCars", "stanford_cars", "", "split_zhou_StanfordCars.json"),
    CoopLayout("OxfordFlowers", "oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json"),
    CoopLayout("Food101", "food-101", "images", "split_zhou_Food101.json"),
    CoopLayout("FGVCAircraft", "fgvc_aircraft", "images", None, "fgvc"),
    CoopLayout("SUN397", "sun397", "SUN397", "split_zhou_SUN397.json"),
    CoopLayout("DescribableTextures", "dtd", "images", "split_zhou_DescribableTextures.json"),
    CoopLayout("EuroSAT", "eurosat", "2750", "split_zhou_EuroSAT.json"),
    CoopLayout("UCF101", "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json"),
)}
#: the CLI names: CoOp's dataset_dir without '-' and '_' (caltech101, oxfordpets, ...) plus these aliases
ALIASES = {"oxford_pets": "oxfordpets", "stanford_cars": "stanfordcars", "oxford_flowers": "oxfordflowers",
           "flowers102": "oxfordflowers", "fgvc_aircraft": "fgvcaircraft", "describabletextures": "dtd",
           "caltech-101": "caltech101", "food-101": "food101"}


def coop_layout(name: str) -> CoopLayout | None:
    key = name.lower()
    return COOP_DATASETS.get(ALIASES.get(key, key))


def _json_split(layout: CoopLayout, base: Path) -> Splits:
    path = need_file(base / layout.split_file, f"{layout.name} split file",
                     f"download {layout.split_file} into {base} (links in CoOp's DATASETS.md)")
    data = read_json(path, f"{layout.name} split file")
    image_dir = need_dir(base / layout.image_dir, f"{layout.name} image folder",
                         f"extract the images into {base / layout.image_dir} (see CoOp's DATASETS.md)")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("train", "test")):
        raise ConfigError(f"{path} must hold {{'train': [...], 'val': [...], 'test': [...]}} of "
                          "[relpath, label, classname] triples")
    pairs: list[tuple[int, str]] = []
    splits: dict[str, list[Item]] = {}
    for key in ("train", "val", "test"):
        items = []
        for n, entry in enumerate(data.get(key, [])):
            if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                    and isinstance(entry[1], int) and isinstance(entry[2], str)):
                raise ConfigError(f"{path}: {key}[{n}] = {entry!r} is not a [relpath, label, classname] triple")
            items.append(Item(str(image_dir / entry[0]), entry[1]))
            if key == "train":
                pairs.append((entry[1], entry[2]))
        splits[key] = items
    names = names_by_label(pairs, f"{path} (train)")
    for key in ("val", "test"):
        bad = [it.label for it in splits[key] if not 0 <= it.label < len(names)]
        if bad:
            raise ConfigError(f"{path}: {key} has labels {sorted(set(bad))[:5]} that the train split does not have")
    return Splits(layout.name, names, splits["train"], splits["test"], splits["val"],
                  source={"split_file": str(path), "image_dir": str(image_dir)})


def _fgvc_list(base: Path, image_dir: Path, split: str, labels: dict[str, int]) -> list[Item]:
    path = need_file(base / f"images_variant_{split}.txt", "FGVCAircraft list",
                     "extract fgvc-aircraft-2013b/data into the dataset folder (CoOp's DATASETS.md)")
    items = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        image, _, variant = line.strip().partition(" ")
        if variant not in labels:
            raise ConfigError(f"{path}:{n}: variant {variant!r} is not in variants.txt")
        items.append(Item(str(image_dir / f"{image}.jpg"), labels[variant]))
    return items


def _fgvc(layout: CoopLayout, base: Path) -> Splits:
    variants = need_file(base / "variants.txt", "FGVCAircraft variants.txt",
                         "extract fgvc-aircraft-2013b/data into the dataset folder (CoOp's DATASETS.md)")
    names = [line.strip() for line in variants.read_text().splitlines() if line.strip()]
    labels = {c: i for i, c in enumerate(names)}
    image_dir = need_dir(base / layout.image_dir, "FGVCAircraft image folder", f"extract the images into {base}")
    train, val, test = (_fgvc_list(base, image_dir, s, labels) for s in ("train", "val", "test"))
    return Splits(layout.name, names, train, test, val, source={"variants": str(variants), "image_dir": str(image_dir)})


def read_coop(name: str, root: str | Path) -> Splits:
    """The CoOp data set ``name`` under ``root`` (the folder holding ``<dataset_dir>/``)."""
    layout = coop_layout(name)
    if layout is None:
        raise ConfigError(f"{name!r} is not one of CoOp's data sets: {sorted(COOP_DATASETS)}")
    root = Path(root)
    base = need_dir(root / layout.dataset_dir, f"{layout.name} folder",
                    f"--root must be the folder holding {layout.dataset_dir}/ (CoOp's $DATA; see its DATASETS.md)")
    if layout.layout == "imagenet":
        splits = read_image_folder(layout.name, base / layout.image_dir, train="train", test="val", val=None,
                                   classnames=base / "classnames.txt", exact_classnames=False)
        splits.source["classnames"] = str(base / "classnames.txt")
        return splits
    return _fgvc(layout, base) if layout.layout == "fgvc" else _json_split(layout, base)
