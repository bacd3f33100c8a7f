"""``prompt-plugins eval --adapter RUN/seed1 [...]``: base / new / HM on the test split the adapter recorded (or of
zero-shot CLIP: ``--dataset NAME --root DIR --backbone B``); ``--json FILE`` writes the results."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._args import add_data_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="base / new / HM on the test split (adapters or zero-shot CLIP)",
                              description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--adapter", nargs="+", metavar="DIR",
                   help="adapter folders written by train, or run folders (their seed*/ adapters); default: "
                        "zero-shot CLIP")
    add_data_arguments(p, required=False)
    p.add_argument("--shots", type=int, help="zero-shot / adapters without a record: shots of the split (default 16)")
    p.add_argument("--seed", type=int, help="zero-shot / adapters without a record: seed of the split (default 1)")
    p.add_argument("--batch-size", type=int, default=100, help="test batch (default 100, as CoOp)")
    p.add_argument("--per-class", action="store_true", help="print (and write) the accuracy of every class")
    p.add_argument("--json", metavar="FILE", help="write the result (a list for several adapters) as JSON")
    p.add_argument("--quiet", action="store_true", help="print only the result lines")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..files import write_atomic
    from ..runs import EvalPlan, evaluate_adapters
    from ..runs.plan import check_writable
    from ..runs.results import adapter_folders, format_result

    if args.json:
        check_writable(Path(args.json).parent, "--json")
    adapters, notes = adapter_folders(args.adapter or [])
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    plan = EvalPlan(adapters=adapters, dataset=args.dataset, root=args.root,
                    splits=args.splits, classnames=args.classnames, backbone=args.backbone,
                    backbone_base=args.backbone_base, shots=args.shots, seed=args.seed, frames=args.frames,
                    device=args.device, workers=args.workers, threads=args.threads, batch_size=args.batch_size,
                    per_class=args.per_class)
    results = evaluate_adapters(plan)
    for result in results:
        print(format_result(result))
    if args.json:
        data = results[0] if len(results) == 1 else results
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(Path(args.json), (json.dumps(data, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    return 0
