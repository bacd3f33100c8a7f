"""Tiny data sets written on disk in each published layout (tiny PNGs with PIL): CoOp's JSON split, ImageNet's
folders + classnames.txt, FGVCAircraft's lists, ViFi-CLIP's split files + label CSVs (frame folders, and a short
encoded video when PyAV is installed), and the generic imagefolder."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

#: class names with a distinct colour each (label = position)
CLASSES = [("red circle", (220, 30, 30)), ("blue square", (30, 30, 220)), ("green bar", (30, 200, 30)),
           ("yellow star", (220, 220, 30)), ("purple ring", (150, 30, 180))]


def png(path: Path, rgb: tuple[int, int, int], i: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (40 + 2 * (i % 3), 36), rgb)
    img.putpixel((i % 30, 3), (255 - rgb[0], 255 - rgb[1], 255 - rgb[2]))  # items differ
    img.save(path)


def coop_json(root: Path, n_classes: int = 5, train: int = 3, val: int = 1, test: int = 2,
              dataset_dir: str = "oxford_pets", image_dir: str = "images",
              split_file: str = "split_zhou_OxfordPets.json") -> Path:
    """``root/<dataset_dir>/<image_dir>/<class>/<i>.png`` + the split JSON; returns ``root``."""
    base = root / dataset_dir
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, (name, rgb) in enumerate(CLASSES[:n_classes]):
        for key, count in (("train", train), ("val", val), ("test", test)):
            for i in range(count):
                rel = f"{name.replace(' ', '_')}/{key}_{i}.png"
                png(base / image_dir / rel, rgb, i)
                split[key].append([rel, label, name])
    (base / split_file).write_text(json.dumps(split))
    return root


def imagenet(root: Path, n_classes: int = 4, train: int = 3, test: int = 2) -> Path:
    """``root/imagenet/images/{train,val}/<wnid>/*`` + ``classnames.txt``."""
    base = root / "imagenet"
    lines = []
    for label, (name, rgb) in enumerate(CLASSES[:n_classes]):
        wnid = f"n0000{label}"
        lines.append(f"{wnid} {name}")
        for split, count in (("train", train), ("val", test)):
            for i in range(count):
                png(base / "images" / split / wnid / f"{wnid}_{i}.JPEG.png", rgb, i)
    (base / "classnames.txt").write_text("\n".join(lines) + "\n")
    return root


def fgvc(root: Path, n_classes: int = 4, per_split: int = 2) -> Path:
    base = root / "fgvc_aircraft"
    names = [f"7{label}7-300" for label in range(n_classes)]
    (base / "images").mkdir(parents=True)
    (base / "variants.txt").write_text("\n".join(names) + "\n")
    for split in ("train", "val", "test"):
        lines = []
        for label, name in enumerate(names):
            for i in range(per_split):
                image = f"{split}{label}{i:03d}"
                png(base / "images" / f"{image}.jpg", CLASSES[label][1], i)
                lines.append(f"{image} {name}")
        (base / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def imagefolder(root: Path, n_classes: int = 4, train: int = 3, test: int = 2, frames: int = 0) -> Path:
    """``root/{train,test}/<class>/<i>.png`` (or frame folders of ``frames`` images)."""
    for name, rgb in CLASSES[:n_classes]:
        for split, count in (("train", train), ("test", test)):
            for i in range(count):
                folder = root / split / name.replace(" ", "_")
                if frames:
                    for t in range(frames):
                        png(folder / f"clip{i}" / f"{t:03d}.png", tuple(max(0, c - 20 * t) for c in rgb), i)
                else:
                    png(folder / f"{i}.png", rgb, i)
    return root


def write_video(path: Path, rgb: tuple[int, int, int], frames: int = 6) -> None:
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 48, 40, "yuv420p"
        for t in range(frames):
            arr = np.zeros((40, 48, 3), np.uint8)
            arr[:] = [max(0, c - 15 * t) for c in rgb]
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def vifi(videos: Path, splits: Path, *, base: int = 3, novel: int = 2, shots: int = 2, test: int = 2,
         frames: int = 5, encoded: bool = False, dataset: str = "hmdb51") -> tuple[Path, Path]:
    """ViFi-CLIP's layout of ``dataset`` (a key of ``VIFI_DATASETS``):
    ``splits/datasets_splits/base2novel_splits/<x>_splits/*.txt`` and ``splits/labels/<x>_{base,novel}_labels.csv``;
    ``videos/<clip>.avi`` (a frame folder ``<clip>/`` unless ``encoded``)."""
    from prompt_plugins.data import VIFI_DATASETS

    layout = VIFI_DATASETS[dataset]
    lists = splits / "datasets_splits" / "base2novel_splits" / layout.split_dir
    labels = splits / "labels"
    lists.mkdir(parents=True)
    labels.mkdir(parents=True)
    # ViFi's base list does not start with the alphabetically first class: base = the last classes here
    base_classes, novel_classes = CLASSES[novel:novel + base], CLASSES[:novel]
    for kind, classes in (("base", base_classes), ("novel", novel_classes)):
        rows = ["id,name"] + [f"{i},{n}" for i, (n, _) in enumerate(classes)]
        (labels / (layout.base_csv if kind == "base" else layout.novel_csv)).write_text("\n".join(rows) + "\n")

    def clip(tag: str, label: int, rgb) -> str:
        rel = f"{tag}_{label}.avi"
        if encoded:
            write_video(videos / rel, rgb, frames)
        else:
            for t in range(frames):
                png(videos / rel[:-4] / f"img_{t:05d}.png", tuple(max(0, c - 15 * t) for c in rgb), t)
        return rel

    for s in (1, 2, 3):
        lines = [f"{clip(f's{s}_{i}', y, rgb)} {y}" for y, (_, rgb) in enumerate(base_classes) for i in range(shots)]
        (lists / f"fs_base_s{s}_train.txt").write_text("\n".join(lines) + "\n")
    for kind, classes in (("base_val", base_classes), ("novel_val", novel_classes)):
        lines = [f"{clip(f'{kind}{i}', y, rgb)} {y}" for y, (_, rgb) in enumerate(classes) for i in range(test)]
        (lists / f"{kind}.txt").write_text("\n".join(lines) + "\n")
    return videos, splits
