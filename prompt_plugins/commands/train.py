"""``prompt-plugins train --dataset NAME --root DIR --backbone B --out RUN``: tune prompts on the base classes of
a data set in its published layout with a released recipe, one adapter per seed in ``RUN/seed{N}/``."""
from __future__ import annotations

import argparse

from ._args import add_data_arguments, parse_set

#: flag -> recipe field (the flags that override the recipe)
OVERRIDES = {"epochs": "epochs", "lr": "lr", "batch_size": "batch_size", "warmup_epochs": "warmup_epochs",
             "weight_decay": "weight_decay", "n_ctx": "n_ctx", "ctx_init": "ctx_init", "depth": "depth",
             "top_k": "top_k"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..recipes import RECIPES
    from ..runs.objectives import DEFAULT_RECIPES, METHODS

    p = subparsers.add_parser("train", help="tune prompts on the base classes of a real data set, per seed",
                              description=" ".join(__doc__.split("\n\n")[0].split()))
    add_data_arguments(p, required=True)
    p.add_argument("--out", required=True, metavar="RUN", help="run folder: adapters go to RUN/seed{N}/")
    p.add_argument("--method", default="coop", choices=METHODS,
                   help="coop, ivlp (deep text + visual prompts), maple (deep text prompts coupled to visual ones), "
                        "promptsrc (deep prompts + self-regulation + GPA), kgcoop (CoOp + knowledge-guided term), "
                        "promptkd (needs --teacher), dpc (stage 2, needs --from), ga2 (needs --hard-prompt)")
    p.add_argument("--recipe", choices=sorted(RECIPES), help="released recipe (default: "
                   + ", ".join(f"{m} -> {r}" for m, r in DEFAULT_RECIPES.items()) + ")")
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="seeds to run (default: 1); e.g. --seeds 1 2 3")
    p.add_argument("--shots", type=int, help="training items per base class (default: the recipe's, 16)")
    g = p.add_argument_group("recipe overrides")
    g.add_argument("--epochs", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--batch-size", type=int, help="items per optimisation step")
    g.add_argument("--warmup-epochs", type=int)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--n-ctx", type=int, help="context tokens (random init unless --ctx-init)")
    g.add_argument("--ctx-init", help="words initialising the context, e.g. 'a photo of a'")
    g.add_argument("--depth", type=int, help="prompt depth")
    g.add_argument("--top-k", type=int, help="DPC: hard negatives per anchor")
    g.add_argument("--set", nargs="+", metavar="FIELD=VALUE", help="any other recipe field, e.g. --set momentum=0.8")
    m = p.add_argument_group("method inputs")
    m.add_argument("--from", dest="stage1", metavar="RUN", help="dpc: the stage-1 run (or adapter) of the same data")
    m.add_argument("--hard-prompt", metavar="FILE", help="ga2: the hard prompt (checkpoint, .safetensors or adapter)")
    m.add_argument("--anchors", metavar="DIR|SPLITFILE", help="ga2: unlabelled anchor clips (a folder or a list)")
    m.add_argument("--anchors-root", metavar="DIR", help="ga2: the folder a --anchors list's paths are relative to")
    m.add_argument("--anchor-weight", type=float, help="ga2: weight of the anchor term (default 1)")
    m.add_argument("--teacher", metavar="RUN_OR_ADAPTER", help="promptkd: the teacher run (RUN/seed{N}) or adapter")
    m.add_argument("--teacher-backbone", metavar="SPEC", help="promptkd: the teacher's CLIP, as --backbone (default: "
                   "another copy of --backbone)")
    p.add_argument("--resume", action="store_true", help="continue interrupted seeds, skip finished ones")
    p.add_argument("--overwrite", action="store_true", help="replace adapters already in RUN/seed{N}/")
    p.add_argument("--allow-mixed", action="store_true",
                   help="add seeds to a RUN whose run.json records other settings (recorded there); default: refuse")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)  # tests: stop as if killed after N epochs
    p.add_argument("--steps", help=argparse.SUPPRESS)  # gone: named in a clear error (main)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..runs import TrainPlan, train
    from ..runs.trainer import Stopped

    if args.steps is not None:
        raise ConfigError(f"--steps {args.steps}: train counts epochs, as the recipes do; pass --epochs N (one "
                          "epoch = the few-shot base set once, in batches of --batch-size)")
    overrides = {field: getattr(args, flag) for flag, field in OVERRIDES.items() if getattr(args, flag) is not None}
    if args.n_ctx is not None and args.ctx_init is None:
        overrides["ctx_init"] = None  # N tokens drawn from N(0, 0.02^2), not the recipe's init words
    overrides.update(parse_set(args.set))
    plan = TrainPlan(dataset=args.dataset, root=args.root, backbone=args.backbone, out=args.out, method=args.method,
                     recipe=args.recipe, overrides=overrides, seeds=args.seeds, shots=args.shots, frames=args.frames,
                     splits=args.splits, classnames=args.classnames, stage1=args.stage1, hard_prompt=args.hard_prompt,
                     anchors=args.anchors, anchors_root=args.anchors_root, anchor_weight=args.anchor_weight,
                     backbone_base=args.backbone_base, teacher=args.teacher, teacher_backbone=args.teacher_backbone,
                     device=args.device, workers=args.workers, threads=args.threads,
                     resume=args.resume, overwrite=args.overwrite, progress=not args.quiet, stop_after=args.stop_after,
                     allow_mixed=args.allow_mixed, command=getattr(args, "argv", None))
    try:
        train(plan)
    except Stopped as stop:
        print(f"{stop}; continue with --resume")
        return 3
    return 0
