"""``train`` throughput (items/s) and peak memory: the streaming loader vs the in-RAM loader it replaced.

    PYTHONPATH=$PWD python benchmarks/data_loader.py                 # 1,000 classes, 16 shots, 112 px
    PYTHONPATH=$PWD python benchmarks/data_loader.py --quick         # 100 classes, for a smoke run

One run writes a tiny-image data set in the ``imagefolder`` layout (``--classes`` classes, ``--shots`` JPEGs of
``--source-size`` per class in train/, one in test/), a tiny OpenAI CLIP checkpoint (input ``--size``), then trains
the same CoOp prompt on the ``ceil(C/2)`` base classes for ``--epochs`` epochs of batch 32 with each variant, each
in a fresh subprocess (so peak RSS is its own), interleaved over ``--rounds``:

* ``in-RAM``: the loader and training path of ``prompt-plugins train`` before this change (commit ffdc17f^,
  ``commands/_data.py`` + ``training.fit``, reproduced below): every image decoded once into one float32
  tensor, frozen features computed once, then AdamW steps on the features; no augmentation.
* ``streaming wN``: ``prompt-plugins train --dataset imagefolder`` with ``--workers N``: items decoded and
  augmented (random resized crop + flip) every epoch, features computed every step, the recipe's SGD.

items/s = base items x epochs / wall seconds of data + training (backbone loading excluded). Peak MB = the
subprocess's peak RSS; "data MB" = peak minus the RSS after imports and the backbone load.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------ the data set and the backbone
def write_dataset(root: Path, classes: int, shots: int, source: int) -> None:
    from PIL import Image

    for c in range(classes):
        rgb = ((c * 37) % 256, (c * 91) % 256, (c * 53) % 256)
        for split, count in (("train", shots), ("test", 1)):
            folder = root / split / f"class_{c:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img = Image.new("RGB", (source, source * 3 // 4), rgb)
                for x in range(0, source, 8):
                    img.putpixel((x, (x * (i + 1)) % (source * 3 // 4)), (255, 255, 255))
                img.save(folder / f"{i}.jpg", quality=90)


def write_backbone(path: Path, size: int) -> None:
    from clip.model import CLIP

    torch.manual_seed(0)
    # embed_dim, image_resolution, vision_layers, vision_width, patch, context, vocab, t_width, t_heads, t_layers
    torch.save(CLIP(64, size, 2, 64, 16, 77, 49408, 64, 2, 2).state_dict(), path)


# ------------------------------------------------------------------------------ the in-RAM path (before)
def old_load_folder(root: Path, size: int, shots: int, seed: int):
    """``commands/_data.py:load_folder`` before this change: sorted class folders, ``randperm`` shots, every image
    resized + centre-cropped into one float32 tensor."""
    from PIL import Image

    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)

    def transform(img):
        img = img.convert("RGB")
        w, h = img.size
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
        data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size, 3)
        return (data.permute(2, 0, 1).float() / 255 - mean) / std

    folders = sorted(p for p in root.iterdir() if p.is_dir())
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for label, folder in enumerate(folders):
        entries = sorted(folder.iterdir())
        entries = [entries[i] for i in torch.randperm(len(entries), generator=g)[:shots].tolist()]
        for p in entries:
            with Image.open(p) as img:
                xs.append(transform(img))
            ys.append(label)
    return torch.stack(xs), torch.tensor(ys), [f.name.replace("_", " ") for f in folders]


def run_in_ram(root: Path, backbone: Path, shots: int, epochs: int) -> dict:
    import prompt_plugins as pp
    from prompt_plugins.runs.backbone import load_backbone
    from prompt_plugins.training import FeatureModel, encode_images, fit

    model = load_backbone(str(backbone))
    base_rss = rss_mb()
    start = time.perf_counter()
    x, y, names = old_load_folder(root / "train", model.visual.input_resolution, shots, seed=1)
    base = list(range(math.ceil(len(names) / 2)))
    keep = torch.isin(y, torch.tensor(base))
    x, y = x[keep], y[keep]
    loaded = time.perf_counter()
    prompted = pp.wrap(model, names, method="coop", n_ctx=4, ctx_init="a photo of a")
    feats = encode_images(prompted, x)
    head = FeatureModel(prompted, model.logit_scale.exp().item())
    fit(lambda idx: head(feats[idx], classes=base), prompted.trainable_parameters(), y,
        steps=epochs * (len(y) // 32), lr=2e-3, batch=32, seed=1, progress=False)
    end = time.perf_counter()
    return {"items": len(y) * epochs, "seconds": end - start, "load_s": loaded - start, "base_rss": base_rss}


# ------------------------------------------------------------------------------ the streaming path (after)
def run_streaming(root: Path, backbone: Path, shots: int, epochs: int, workers: int) -> dict:
    import prompt_plugins.runs.backbone as backbone_module
    from prompt_plugins.cli import main

    real = backbone_module.load_backbone
    marks: dict[str, float] = {}

    def timed_load(*args, **kwargs):  # start the clock after the backbone, as for the in-RAM path
        model = real(*args, **kwargs)
        marks["base_rss"], marks["start"] = rss_mb(), time.perf_counter()
        return model

    backbone_module.load_backbone = timed_load
    with tempfile.TemporaryDirectory() as out:
        code = main(["train", "--dataset", "imagefolder", "--root", str(root), "--backbone", str(backbone), "--out",
                     out, "--epochs", str(epochs), "--warmup-epochs", "0", "--batch-size", "32", "--shots", str(shots),
                     "--workers", str(workers), "--quiet"])
        end = time.perf_counter()
        run = json.loads((Path(out) / "seed1" / "adapter_config.json").read_text())["run"]
    assert code == 0
    return {"items": run["train_items"] // 32 * 32 * epochs, "seconds": end - marks["start"],
            "base_rss": marks["base_rss"]}


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    root, backbone = Path(args.root), Path(args.backbone)
    if args.variant == "in-RAM":
        out = run_in_ram(root, backbone, args.shots, args.epochs)
    else:
        out = run_streaming(root, backbone, args.shots, args.epochs, int(args.variant.split("w")[-1]))
    out["peak_mb"] = peak_mb()
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--size", type=int, default=112, help="the CLIP's input size")
    p.add_argument("--source-size", type=int, default=160, help="width of the JPEGs written")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="streaming loader workers to compare")
    p.add_argument("--quick", action="store_true", help="100 classes")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.add_argument("--backbone", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.variant = args.child
        return child(args)
    if args.quick:
        args.classes = 100
    variants = ["in-RAM"] + [f"streaming w{w}" for w in args.workers]
    with tempfile.TemporaryDirectory() as tmp:
        root, backbone = Path(tmp) / "data", Path(tmp) / "clip.pt"
        t = time.perf_counter()
        write_dataset(root, args.classes, args.shots, args.source_size)
        write_backbone(backbone, args.size)
        print(f"wrote {args.classes} classes x {args.shots} JPEGs ({args.source_size}x{args.source_size * 3 // 4}) in "
              f"{time.perf_counter() - t:.0f} s; CLIP input {args.size}px; {args.epochs} epochs of batch 32 on the "
              f"{math.ceil(args.classes / 2)} base classes; {args.threads} torch thread(s)", flush=True)
        results: dict[str, list[dict]] = {v: [] for v in variants}
        for r in range(args.rounds):
            for v in variants:
                cmd = [sys.executable, __file__, "--child", v, "--root", str(root), "--backbone", str(backbone),
                       "--shots", str(args.shots), "--epochs", str(args.epochs), "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    sys.exit(f"{v} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
                results[v].append(json.loads(line[7:]))
                print(f"round {r + 1} {v}: {results[v][-1]}", flush=True)
    print("\n| variant | items/s | seconds | peak MB | data MB |\n|---|---|---|---|---|")
    for v in variants:
        runs = results[v]
        secs = statistics.median(x["seconds"] for x in runs)
        rate = statistics.median(x["items"] / x["seconds"] for x in runs)
        peak = statistics.median(x["peak_mb"] for x in runs)
        data = statistics.median(x["peak_mb"] - x["base_rss"] for x in runs)
        print(f"| {v} | {rate:.1f} | {secs:.1f} | {peak:.0f} | {data:.0f} |")


if __name__ == "__main__":
    main()
