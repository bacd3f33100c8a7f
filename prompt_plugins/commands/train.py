"""``prompt-plugins train DATA --backbone B --out DIR``: tune prompts on the base classes of a
folder-per-class data set and save the adapter (safetensors + JSON)."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..errors import ConfigError
from ._split import add_data_arguments, positive_float, positive_int, split_classes


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="tune prompts on real data (base classes) and save an adapter",
                              description=__doc__.splitlines()[0])
    add_data_arguments(p)
    p.add_argument("--out", required=True, help="adapter folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an adapter already in --out (default: refuse)")
    p.add_argument("--method", default="coop", help="registered method (default: coop)")
    p.add_argument("--n-ctx", type=positive_int, default=None, help="context tokens (default 16, or ctx-init's length)")
    p.add_argument("--ctx-init", default=None, help="words to initialise the context, e.g. 'a photo of a'")
    p.add_argument("--shots", type=positive_int, default=None, help="items per base class (default: all)")
    p.add_argument("--steps", type=positive_int, default=200, help="optimisation steps (default: 200)")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="AdamW learning rate (default: 2e-3)")
    p.add_argument("--batch", type=positive_int, default=32, help="batch size (default: 32)")
    p.add_argument("--seed", type=int, default=0, help="seed for shots, batches and prompt init (default: 0)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..backends import resolve
    from ..checkpoint import check_save_target, save_pretrained
    from ..model import PromptedCLIP
    from ..registry import get_method, wrap
    from ..training import FeatureModel, encode_images, fit
    from ._backbone import load_backbone
    from ._data import load_folder, read_classnames

    out_dir = Path(args.out)
    check_save_target(out_dir, args.overwrite, "--out")  # before minutes of training, not after
    get_method(args.method)
    names = read_classnames(args.classnames) if args.classnames else None
    model = load_backbone(args.backbone)
    backend = resolve(model)
    data = load_folder(args.data, backend.image_size, classnames=names, frames=args.frames, shots=args.shots,
                       seed=args.seed, progress=not args.quiet)
    base, new = split_classes(len(data.classnames), args.n_base)
    keep = torch.isin(data.y, torch.tensor(base))
    x, y = data.x[keep], data.y[keep]
    options = {k: v for k, v in (("n_ctx", args.n_ctx), ("ctx_init", args.ctx_init)) if v is not None}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        prompted = wrap(model, data.classnames, method=args.method, **options)
    if not hasattr(prompted, "trainable_parameters"):
        raise ConfigError(f"method {args.method!r} built a {type(prompted).__name__} without trainable_parameters()")
    print(f"{len(data.classnames)} classes ({len(base)} base, {len(new)} new); training on {len(y)} base items "
          f"with {args.method}; trainable parameters: {sum(p.numel() for p in prompted.trainable_parameters()):,}")
    base_idx = torch.tensor(base)
    if isinstance(prompted, PromptedCLIP) and prompted.prompt().visual is None:
        feats = encode_images(prompted, x)
        head = FeatureModel(prompted, backend.logit_scale.exp().item())

        def logits_fn(idx):
            return head(feats[idx], classes=base)
    else:
        def logits_fn(idx):
            return prompted(x[idx])[:, base_idx]
    loss = fit(logits_fn, prompted.trainable_parameters(), y, steps=args.steps, lr=args.lr, batch=args.batch,
               seed=args.seed, desc="training prompts", progress=not args.quiet)
    out = save_pretrained(prompted, out_dir, overwrite=args.overwrite)
    print(f"final loss {loss:.4f}; saved adapter to {out}")
    return 0
