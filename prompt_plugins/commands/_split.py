"""Base/new class split options shared by ``train`` and ``eval``."""
from __future__ import annotations

import argparse
import math
from typing import Callable

from ..errors import ConfigError


def int_at_least(low: int) -> Callable[[str], int]:
    """argparse type: an int >= ``low`` (0 steps or a batch of 0 would train nothing and save an untrained
    adapter; argparse reports the error as ``argument --x: ...`` and exits with status 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is out of range: it must be >= {low}")
        return value

    return parse


positive_int = int_at_least(1)


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0 (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="folder with one sub-folder per class (images, frame folders or videos)")
    p.add_argument("--backbone", required=True,
                   help="OpenAI CLIP checkpoint path, hf:NAME_OR_DIR or open_clip:ARCH[:PRETRAINED] (on disk)")
    p.add_argument("--classnames", metavar="FILE", help="class names, one per line, matching the folder names "
                   "('_' reads as a space); default: the sorted folder names")
    p.add_argument("--n-base", type=positive_int,
                   help="the first N classes are base, the rest new (default: first half)")
    p.add_argument("--frames", type=positive_int, default=8, help="frames sampled per video (default: 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def split_classes(n_classes: int, n_base: int | None) -> tuple[list[int], list[int]]:
    n_base = (n_classes + 1) // 2 if n_base is None else n_base
    if not 1 <= n_base <= n_classes:
        raise ConfigError(f"--n-base {n_base} is out of range for {n_classes} classes (1..{n_classes})")
    return list(range(n_base)), list(range(n_base, n_classes))
