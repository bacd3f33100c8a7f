"""Base/new class split options shared by ``train`` and ``eval``."""
from __future__ import annotations

import argparse

from ..errors import ConfigError


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="folder with one sub-folder per class (images, frame folders or videos)")
    p.add_argument("--backbone", required=True,
                   help="OpenAI CLIP checkpoint path, hf:NAME_OR_DIR or open_clip:ARCH[:PRETRAINED] (on disk)")
    p.add_argument("--classnames", metavar="FILE", help="class names, one per line, matching the folder names "
                   "('_' reads as a space); default: the sorted folder names")
    p.add_argument("--n-base", type=int, help="the first N classes are base, the rest new (default: first half)")
    p.add_argument("--frames", type=int, default=8, help="frames sampled per video (default: 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def split_classes(n_classes: int, n_base: int | None) -> tuple[list[int], list[int]]:
    n_base = (n_classes + 1) // 2 if n_base is None else n_base
    if not 1 <= n_base <= n_classes:
        raise ConfigError(f"--n-base {n_base} is out of range for {n_classes} classes (1..{n_classes})")
    return list(range(n_base)), list(range(n_base, n_classes))
