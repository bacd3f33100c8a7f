"""Command-line arguments shared by ``train`` and ``eval``: the data set, the backbone, the device."""
from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from ..errors import ConfigError


def int_at_least(low: int) -> Callable[[str], int]:
    """argparse type: an int >= ``low`` (argparse reports a refusal as ``argument --x: ...``, status 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is out of range: it must be >= {low}")
        return value

    return parse


def add_data_arguments(p: argparse.ArgumentParser, *, required: bool) -> None:
    from ..data import DATASET_NAMES

    p.add_argument("--dataset", required=required, metavar="NAME",
                   help=f"data set in its published layout: {', '.join(DATASET_NAMES)}")
    p.add_argument("--root", required=required, metavar="DIR",
                   help="CoOp: the folder holding <dataset_dir>/ ($DATA); ViFi: the folder the split files' video "
                        "paths are relative to; imagefolder: the folder holding train/ and test/")
    p.add_argument("--splits", metavar="DIR", help="ViFi data sets: a ViFi-CLIP checkout (datasets_splits/, labels/)")
    p.add_argument("--classnames", metavar="FILE", help="imagefolder: '<folder> <class name>' per line "
                                                        "(default: folder names, '_' read as a space)")
    p.add_argument("--backbone", required=required, metavar="SPEC",
                   help="OpenAI CLIP file or state dict, a ViFi-CLIP / Text4Vis / GA2-CLIP checkpoint, "
                        "hf:NAME_OR_DIR or open_clip:ARCH[:PRETRAINED]; never downloaded")
    p.add_argument("--backbone-base", metavar="FILE",
                   help="the OpenAI CLIP a ViFi-CLIP checkpoint was fine-tuned from (its token embedding)")
    p.add_argument("--frames", type=int, metavar="T", help="frames per video (default: the recipe's, 32 for video)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes (default: 0)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default 0: PyTorch's default)")


def parse_set(items: list[str] | None, flag: str = "--set",
              usage: str = "use FIELD=VALUE with a recipe field, e.g. --set momentum=0.8") -> dict[str, Any]:
    """``FLAG KEY=VALUE`` pairs (VALUE is JSON when it parses, else a string; dashes in KEY read as underscores)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r}: {usage}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out
