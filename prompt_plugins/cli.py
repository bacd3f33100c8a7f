"""``prompt-plugins`` command line. Each subcommand lives in ``prompt_plugins/commands/<name>.py``
and exposes ``add_parser(subparsers)`` which sets ``func`` on its parser; ``COMMANDS`` lists them."""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import PromptPluginsError

#: subcommand modules, in help order
COMMANDS: list[str] = ["demo", "train", "eval", "benchmark", "inspect", "convert"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prompt-plugins", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"prompt_plugins.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: train records it (and its --resume hint)
    try:
        return int(args.func(args) or 0)
    except (PromptPluginsError, OSError) as exc:  # OSError: a file system refusal (permissions, disk full)
        print(f"prompt-plugins {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C: one line (train says where it stopped), not a traceback
        print(f"prompt-plugins {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
