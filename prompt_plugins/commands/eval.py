"""``prompt-plugins eval DATA --backbone B [--adapter DIR]``: base / new / HM accuracy on a
folder-per-class data set (zero-shot when no adapter is given)."""
from __future__ import annotations

import argparse

import torch

from ._split import add_data_arguments, split_classes


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="base / new / HM accuracy of an adapter (or zero-shot) on real data",
                              description=__doc__.splitlines()[0])
    add_data_arguments(p)
    p.add_argument("--adapter", help="adapter folder written by train (default: zero-shot CLIP)")
    p.set_defaults(func=main)


@torch.no_grad()
def _accuracy(prompted, x, y, classes: list[int]) -> float:
    from ..base_new import accuracy
    from ..training import eval_mode

    if not classes:
        return float("nan")
    keep = torch.isin(y, torch.tensor(classes))
    lookup = {c: i for i, c in enumerate(classes)}
    targets = torch.tensor([lookup[int(v)] for v in y[keep]])
    xs = x[keep]
    with eval_mode(prompted):
        logits = torch.cat([prompted(xs[i:i + 64], classes) for i in range(0, len(xs), 64)])
    return accuracy(logits, targets)


def main(args: argparse.Namespace) -> int:
    from ..backends import resolve
    from ..base_new import harmonic_mean
    from ..registry import from_pretrained, wrap
    from ._backbone import load_backbone
    from ._data import load_folder, read_classnames

    names = read_classnames(args.classnames) if args.classnames else None
    model = load_backbone(args.backbone)
    backend = resolve(model)
    data = load_folder(args.data, backend.image_size, classnames=names, frames=args.frames,
                       progress=not args.quiet)
    base, new = split_classes(len(data.classnames), args.n_base)
    if args.adapter:
        prompted = from_pretrained(model, args.adapter, classnames=data.classnames)
        label = f"adapter {args.adapter}"
        b, n = _accuracy(prompted, data.x, data.y, base), _accuracy(prompted, data.x, data.y, new)
    else:
        prompted = wrap(model, data.classnames, method="coop", n_ctx=1)
        label = "zero-shot"
        with prompted.disabled():
            b, n = _accuracy(prompted, data.x, data.y, base), _accuracy(prompted, data.x, data.y, new)
    print(f"{label}: {len(data.y)} items, {len(base)} base / {len(new)} new classes")
    print(f"{'base':>6} {'new':>6} {'HM':>6}")
    hm = harmonic_mean(b, n) if new else float("nan")
    print(f"{b:6.1f} {n:6.1f} {hm:6.1f}")
    return 0
