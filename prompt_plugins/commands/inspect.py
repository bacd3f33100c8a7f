"""``prompt-plugins inspect DIR``: print an adapter's config and tensor shapes (loads no model), or for a run folder
written by ``train`` its record and the state of every seed (finished, interrupted at epoch N)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("inspect", help="print an adapter's config and tensor shapes, or a run folder's seeds",
                              description=__doc__.splitlines()[0])
    p.add_argument("adapter", help="adapter folder (adapter_config.json + adapter_model.safetensors), or a run "
                                   "folder written by train (RUN/seed{N}/)")
    p.set_defaults(func=main)


def run_folder(path: Path) -> int:
    """The record of ``RUN`` (``run.json``, or what its seeds' records say) and one line per seed."""
    from ..checkpoint import read_adapter
    from ..runs.record import read_record
    from ..runs.run_folder import RUN_RECORD, read_run_record, resume_command, seed_folders, seed_state

    record = read_run_record(path)
    seeds = seed_folders(path)
    print(f"run folder {path}")
    if record is not None:
        data, backbone, recipe = record["data"], record["backbone"], record["recipe"]
        print(f"  {record['method']} with recipe {record.get('recipe_name')} ({recipe.get('epochs')} epochs, lr "
              f"{recipe.get('lr')}, batch {recipe.get('batch_size')}); overrides {record.get('overrides') or {}}")
        print(f"  {data['dataset']} at {data['root']}: {len(data['classnames'])} classes "
              f"({len(data['base_classes'])} base / {len(data['new_classes'])} new), {record['shots']} shots")
        print(f"  backbone {backbone['path']} ({backbone['fingerprint']})")
        for entry in record.get("mixed") or []:
            print(f"  mixed (--allow-mixed): seeds {entry['seeds']}: {'; '.join(entry['differences'])}")
    else:
        print(f"  no {RUN_RECORD} (written before run records); the seeds' own 'run' sections:")
    resume = []
    for seed, folder in seeds.items():
        state, epoch = seed_state(folder)
        if state == "finished":
            config, _ = read_adapter(folder)
            run = read_record(config, str(folder / "adapter_config.json"))
            detail = f"finished: {run.method}, {run.epochs} epochs, {run.shots} shots" if run else "finished"
        elif state == "interrupted":
            detail = f"interrupted at epoch {epoch if epoch is not None else '?'}"
        else:
            detail = "empty: no epoch finished"
        print(f"  seed {seed}: {detail}")
        if state != "finished":
            resume.append(seed)
    if not seeds:
        print("  no seed folders")
    for seed in resume:
        print(f"  continue seed {seed} with: {resume_command(record or {}, path, seed)}")
    return 0


def main(args: argparse.Namespace) -> int:
    from ..checkpoint import CONFIG_NAME, read_adapter
    from ..runs.run_folder import RUN_RECORD, seed_folders

    path = Path(args.adapter)
    if path.is_dir() and not (path / CONFIG_NAME).exists() and ((path / RUN_RECORD).is_file() or seed_folders(path)):
        return run_folder(path)
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
