"""``prompt-plugins convert SRC OUT_DIR [--format NAME] ...``: turn a checkpoint released by another code base
into an adapter directory that ``from_pretrained`` loads (formats come from the importer registry), or with
``--to-clip`` write the CLIP backbone of a fine-tuning checkpoint as a plain OpenAI CLIP state dict."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..checkpoint import CONFIG_NAME
from ..errors import ConfigError
from ._args import parse_set


def to_clip(args: argparse.Namespace) -> int:
    """``--to-clip``: the CLIP backbone of a fine-tuning checkpoint as a plain OpenAI CLIP state dict."""
    import io

    import torch

    from ..checkpoint import serialize_tensors
    from ..files import write_atomic
    from ..runs.backbone import backbone_state_dict, build_openai

    out = Path(args.out_dir)
    if out.suffix not in (".pt", ".pth", ".safetensors"):
        raise ConfigError(f"--to-clip writes one file: OUT {args.out_dir!r} must end in .pt, .pth or .safetensors")
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{args.out_dir!r} exists; pass --overwrite to replace it")
    state = backbone_state_dict(Path(args.src), args.backbone)
    build_openai(state, Path(args.src))  # refuse tensors that do not make an OpenAI CLIP
    if out.suffix == ".safetensors":
        data = serialize_tensors(state, {"format": "pt"})
    else:
        buffer = io.BytesIO()
        torch.save({k: v.contiguous() for k, v in state.items()}, buffer)
        data = buffer.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, data)
    print(f"wrote the CLIP backbone of {args.src} ({len(state)} tensors) -> {out}; use it as --backbone {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..importers import convert

    if args.to_clip:
        return to_clip(args)

    options = parse_set(args.option, "--option", "use KEY=VALUE (VALUE is JSON when it parses, else a string)")
    if args.hard_prompt is not None:
        options["hard_prompt"] = args.hard_prompt
    if args.backbone is not None:
        options["backbone"] = args.backbone
    if args.weight_base is not None:
        options["weight_base"] = args.weight_base
    if args.classnames is not None:
        from ..data import read_classnames

        options["classnames"] = read_classnames(args.classnames)
    if args.allow_unsafe:
        options["allow_unsafe"] = True
    if args.keep_towers:
        options["keep_towers"] = True
    out = Path(convert(Path(args.src), Path(args.out_dir), args.format, overwrite=args.overwrite, **options))
    config = json.loads((out / CONFIG_NAME).read_text())
    report = config["imported_from"]
    print(f"converted {args.src} ({report['format']}) -> {out}")
    for key in ("dropped", "unexpected", "missing"):
        if report.get(key):
            print(f"  {key} keys: {', '.join(report[key])}")
    if report.get("skipped_backbone"):
        print(f"  backbone tensors not imported: {report['skipped_backbone']}")
    towers = report.get("towers")
    if isinstance(towers, dict) and towers.get("summary"):
        print(f"  the file's frozen towers ({len(towers['summary'])} tensors): "
              + ("kept with the adapter (tower.*)" if towers.get("kept") else
                 "not kept (loading warns if they differ from your CLIP's; --keep-towers keeps them)"))
    return 0


def add_parser(subparsers: Any) -> None:
    from ..importers import IMPORTERS
    parser = subparsers.add_parser(
        "convert", help="convert a released checkpoint into an adapter directory",
        description="Convert a checkpoint released by another code base (see --format) into an adapter directory "
                    "that prompt_plugins.from_pretrained loads. Pickles are read weights-only.")
    parser.add_argument("src", help="checkpoint file")
    parser.add_argument("out_dir", help="adapter directory to write (--to-clip: the state-dict file)")
    parser.add_argument("--format", choices=sorted(IMPORTERS) or None,
                        help="checkpoint format (detected when omitted)")
    parser.add_argument("--hard-prompt", help="GA2-CLIP: the hard_prompt_pretrain checkpoint or a .safetensors file")
    parser.add_argument("--backbone", help="CoOp+DPC (--format dpc): the CoOp run directory or model.pth.tar-N the "
                                           "DPC run started from (its prompt serves the new classes); --to-clip: "
                                           "the OpenAI CLIP a ViFi-CLIP checkpoint was fine-tuned from")
    parser.add_argument("--to-clip", action="store_true",
                        help="write the CLIP backbone of a ViFi-CLIP / Text4Vis / GA2-CLIP checkpoint as a plain "
                             "OpenAI CLIP state dict OUT (.pt or .safetensors), usable as train --backbone OUT")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an adapter already in OUT_DIR (--to-clip: an existing OUT file); default: refuse")
    parser.add_argument("--weight-base", type=float, help="CoOp+DPC: w_b of the run (STACK.WEIGHT; default 0.2)")
    parser.add_argument("--classnames", help="text file with one class name per line, stored in the adapter")
    parser.add_argument("--keep-towers", action="store_true",
                        help="MaPLe / IVLP / PromptSRC / PromptKD full-model files: keep the checkpoint's own frozen "
                             "CLIP towers with the adapter (applied while attached) for exact parity with the "
                             "released model; default: the prompts only, and loading warns when the towers differ")
    parser.add_argument("--allow-unsafe", action="store_true",
                        help="load pickles that need arbitrary code (only for files you trust)")
    parser.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="extra importer option, passed through (repeatable)")
    parser.set_defaults(func=run)
