"""``prompt-plugins inspect DIR``: print an adapter's config and tensor shapes (loads no model)."""
from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("inspect", help="print an adapter's config and tensor shapes",
                              description=__doc__.splitlines()[0])
    p.add_argument("adapter", help="adapter folder (adapter_config.json + adapter_model.safetensors)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..checkpoint import read_adapter

    config, tensors = read_adapter(args.adapter)
    shown = config.to_dict()
    for section in (shown, shown.get("run") or {}):
        for key, names in list(section.items()):
            if isinstance(names, list) and len(names) > 10:
                section[key] = names[:10] + [f"... ({len(names)} in all)"]
    print(f"adapter {args.adapter}")
    print(json.dumps(shown, indent=2, sort_keys=True))
    print(f"\n{'tensor':<32} {'shape':<20} {'dtype':<10} {'numel':>10}")
    total = 0
    for name in sorted(tensors):
        t = tensors[name]
        total += t.numel()
        print(f"{name:<32} {str(tuple(t.shape)):<20} {str(t.dtype).replace('torch.', ''):<10} {t.numel():>10,}")
    print(f"{len(tensors)} tensors, {total:,} parameters")
    return 0
