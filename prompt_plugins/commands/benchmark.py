"""``prompt-plugins benchmark RESULTS...``: the papers' base-to-new table from ``eval --json`` results (means over
seeds, HM of the means, the average over data sets) as Markdown, CSV and an optional plot."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("benchmark", aliases=["report"], help="aggregate eval results into the papers' table",
                              description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("results", nargs="+", metavar="PATH", help="JSON files written by eval --json, or folders "
                                                              "holding them (searched recursively)")
    p.add_argument("--markdown", metavar="FILE", help="also write the Markdown table to FILE")
    p.add_argument("--csv", metavar="FILE", help="write the table as CSV")
    p.add_argument("--plot", metavar="FILE.png", help="save a bar chart of base / new / HM (needs matplotlib)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..files import write_atomic
    from ..runs.plan import check_writable
    from ..runs.report import aggregate, check_plot, load_results, save_plot, to_csv, to_markdown

    if args.plot:
        check_plot(args.plot)
    for flag, value in (("--markdown", args.markdown), ("--csv", args.csv), ("--plot", args.plot)):
        if value:
            check_writable(Path(value).parent, flag)
    notes: list[str] = []
    results = load_results(args.results, notes)
    rows = aggregate(results, notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    table = to_markdown(rows)
    print(f"{len(results)} results: {len({r.method for r in rows})} method(s) on {len({r.dataset for r in rows})} "
          "data set(s); means over seeds, HM of the means\n")
    print(table, end="")
    for value, text in ((args.markdown, table), (args.csv, to_csv(rows) if args.csv else "")):
        if value:
            Path(value).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(Path(value), text.encode())
            print(f"wrote {value}")
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        save_plot(rows, args.plot)
        print(f"wrote {args.plot}")
    return 0
