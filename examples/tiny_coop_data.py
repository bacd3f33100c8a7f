"""Write a tiny stand-in for CoOp's data folder and a tiny random CLIP, to try the real-data commands without
downloads: ``DIR/data/oxford_pets/{images/, split_zhou_OxfordPets.json}`` (CoOp's layout, 10 classes of
coloured shapes, 8 train / 2 val / 4 test images each) and ``DIR/tiny-clip.pt`` (an OpenAI CLIP state dict).

    python examples/tiny_coop_data.py /tmp/qs
    prompt-plugins train --dataset oxford_pets --root /tmp/qs/data --backbone /tmp/qs/tiny-clip.pt --out ...

The numbers it gives say nothing about the methods (random weights); the commands are the ones for real data.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40),
           "purple": (150, 50, 190)}
SHAPES = ("circle", "square")


def main(out: Path) -> None:
    base = out / "data" / "oxford_pets"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    names = [f"{c} {s}" for s in SHAPES for c in COLOURS]
    for label, name in enumerate(names):
        colour, shape = name.split()
        for key, count in (("train", 8), ("val", 2), ("test", 4)):
            for i in range(count):
                img = Image.new("RGB", (64, 48), (235, 235, 235))
                box = (8 + 2 * i, 6 + i, 44 + 2 * i, 40)
                draw = ImageDraw.Draw(img)
                (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=COLOURS[colour])
                rel = f"{name.replace(' ', '_')}_{key}_{i}.jpg"
                (base / "images").mkdir(parents=True, exist_ok=True)
                img.save(base / "images" / rel, quality=95)
                split[key].append([rel, label, name])
    (base / "split_zhou_OxfordPets.json").write_text(json.dumps(split))
    from clip.model import CLIP

    torch.manual_seed(0)
    # embed_dim, image_resolution, vision_layers, vision_width, patch, context, vocab, t_width, t_heads, t_layers
    torch.save(CLIP(64, 32, 3, 64, 8, 77, 49408, 64, 2, 3).state_dict(), out / "tiny-clip.pt")
    print(f"wrote {base} ({len(names)} classes) and {out / 'tiny-clip.pt'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-coop"))
