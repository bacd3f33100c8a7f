"""``prompt-plugins demo``: base-to-new prompt tuning on a built-in procedural world (``prompt_plugins.demo``)."""
from __future__ import annotations

import argparse
from typing import Any

import torch

from ..errors import ConfigError
from ._args import int_at_least


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="base-to-new prompt tuning on a built-in world of coloured shapes",
                              description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int_at_least(0), nargs="+", default=[1], help="few-shot / prompt seeds (default: 1)")
    p.add_argument("--plot", metavar="FILE.png", help="save a bar chart of base / new / HM (needs matplotlib)")
    p.add_argument("--methods", nargs="+", metavar="NAME",
                   help="run only these methods (e.g. zero-shot CoOp); default: all")
    p.add_argument("--no-video", action="store_true", help="skip the video task")
    p.add_argument("--world", default="default", help=argparse.SUPPRESS)  # "tiny" for tests
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--eval-split", default="test", choices=("test", "val"), help=argparse.SUPPRESS)  # tuning
    p.add_argument("--threads", type=int_at_least(0), default=0,
                   help="CPU threads (default 0: PyTorch's default, one per core)")
    p.add_argument("--jobs", type=int_at_least(0), default=0,
                   help="run the methods in this many processes side by side (default 0: two on a CPU with two "
                        "cores and threads, image + IVLP in one, the GA2 chain in the other; 1: one process)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = float(value) if "." in value or "e" in value.lower() else int(value)
        except ValueError:
            raise ConfigError(f"--set {item!r}: the value {value!r} is not a number (KEY=INT or KEY=FLOAT)") from None
    return out


def check_selection(args: argparse.Namespace) -> None:
    """``--seeds`` distinct (a repeat would run and average one seed twice); ``--methods`` that ``--no-video``
    leaves nothing of is named as such; ``--plot`` checked before the demo runs."""
    repeated = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"--seeds {' '.join(map(str, args.seeds))} repeats seed(s) {repeated}: each seed would run "
                          "and count twice in the means; pass distinct seeds, e.g. --seeds 1 2 3")
    if args.methods and args.no_video:
        from ..demo import RUNNERS

        video_only = sorted(m for m in set(args.methods) if any(r.name == m for r in RUNNERS)
                            and all(r.task == "video" for r in RUNNERS if r.name == m))
        if video_only:
            raise ConfigError(f"--no-video skips the video task, and with it {video_only} (video methods only): drop "
                              "--no-video, or select image methods "
                              f"({sorted({r.name for r in RUNNERS if r.task != 'video'})})")
    if args.plot:
        from ..runs.report import check_plot

        check_plot(args.plot)


def main(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    check_selection(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_demo(world=args.world, overrides=_parse_set(args.set), seeds=args.seeds, methods=args.methods,
             video=not args.no_video, device=args.device, progress=not args.quiet, plot=args.plot,
             evaluation=args.eval_split, jobs=args.jobs)
    return 0
