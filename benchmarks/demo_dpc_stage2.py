"""How the demo chose its CoOp+DPC stage-2 config, and what stage 2 does to base accuracy, on the *validation*
split of the built-in world (never the reported test split).

For each seed: CoOp (the demo's stage 1), CoOp trained for the same total budget (stage 1 + 20 epochs, the demo's
row), then DPC stage 2 from that prompt with every released stage-2 config (the five CoOp-backbone files and the
PromptKD README one), and with ``--objective ce`` a diagnostic: the same stage 2 but cross-entropy over all base
classes in place of the hard-negative objective (same optimiser, step and w_b), which says whether base accuracy has
room above CoOp at all. New accuracy stays the backbone's (w_n = 0).

``--backbone released`` replaces stage 1 with the backbone the released CoOp+DPC configs load (``BACK_CKPT_PATH``:
CoOp's ``vit_b16_ep100`` config with 4 context tokens and no CTX_INIT, i.e. random N(0, 0.02^2) tokens, the
checkpoint of epoch 50): the CoOp recipe with a 100-epoch schedule stopped after epoch 50.

    PROMPT_PLUGINS_CACHE=... python benchmarks/demo_dpc_stage2.py --seeds 1 2 3 [--objective hn|ce|both]
                                                                  [--backbone coop|released]
"""
from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from prompt_plugins.demo import image, runners
from prompt_plugins.demo.tasks import local_labels
from prompt_plugins.demo.world import World, load_or_pretrain, preset
from prompt_plugins.methods.dpc import DualPromptWrapper
from prompt_plugins.recipes import RECIPES
from prompt_plugins.training import FeatureModel, fit_recipe, seeded

CONFIGS = [name for name in RECIPES if name.startswith("dpc")]


def released_backbone(ctx: runners.Context) -> tuple[float, float]:
    """Stage 1 as the released CoOp+DPC runs load it: 4 random-init tokens, epoch 50 of CoOp's 100-epoch
    schedule (saved as the seed's "coop/image" prompt, which stage 2 and the same-budget row start from)."""
    task, recipe = ctx.task("image"), ctx.recipe("coop").replace(epochs=100, ctx_init=None)
    with ctx.attached("coop", "image", ctx_init=None) as prompted:
        image.train_ce(ctx, task.train_views, task.split.train_y, prompted, recipe, "released backbone",
                       stop_epoch=50)
        ctx.save("coop/image", prompted)
        return ctx.evaluate_text(task, prompted)


def stage2(ctx: runners.Context, name: str, ce: bool) -> float:
    """Base accuracy (val) after stage 2 with recipe ``name`` from the seed's CoOp prompt."""
    task, recipe = ctx.task("image"), ctx.recipe(name)
    with ctx.attached("coop", "image", state=ctx.state("coop/image", image.run_coop)) as prompted:
        wrapper = DualPromptWrapper(prompted, ctx.base_names, **recipe.dpc_options()["wrapper"])
        if ce:
            head, g = FeatureModel(wrapper, ctx.scale), torch.Generator().manual_seed(ctx.seed)
            y, base = local_labels(task.split.train_y, ctx.world.base), ctx.world.base
            fit_recipe(lambda idx, epoch: F.cross_entropy(head(image.pick_views(task.train_views, idx, g), classes=base),
                                                          y[idx]), wrapper.trainable_parameters(), len(y), recipe,
                       seed=ctx.seed, progress=False)
        else:
            image.train_hard_negatives(ctx, task.train_views, task.split.train_y, wrapper, recipe, name)
        base_acc, _ = ctx.evaluate_text(task, wrapper)
        wrapper.unwrap()
        return base_acc


def negatives_found(batch_size: int, top_k: int, n_classes: int = 32, shots: int = 16, epochs: int = 5) -> tuple[float, float]:
    """(% of anchors with at least one negative, negatives per anchor) of the sampler on the demo's base label
    layout (``n_classes`` x ``shots``, shuffled batches), with random backbone scores: the non-repeat filter's
    arithmetic (the batch's classes and accepted negatives are used up), not a trained model's choices."""
    from prompt_plugins.methods.dpc.sampler import sample_negatives

    g, labels = torch.Generator().manual_seed(0), torch.arange(n_classes).repeat_interleave(shots)
    found = total = anchors = 0
    for _ in range(epochs):
        order = labels[torch.randperm(len(labels), generator=g)]
        for i in range(0, len(order), batch_size):
            y = order[i:i + batch_size]
            negatives = sample_negatives(torch.randn(len(y), n_classes, generator=g), y, candidates=range(n_classes),
                                         top_k=top_k, min_negatives=2, generator=g)
            anchors += len(y)
            found += sum(bool(n) for n in negatives)
            total += sum(len(n) for n in negatives)
    return 100 * found / anchors, total / anchors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--configs", nargs="+", default=CONFIGS, choices=CONFIGS)
    parser.add_argument("--objective", choices=("hn", "ce", "both"), default="hn",
                        help="stage 2 with the hard-negative objective (hn), cross-entropy (ce: room check) or both")
    parser.add_argument("--backbone", choices=("coop", "released"), default="coop",
                        help="stage 1: the demo's CoOp (recipe coop) or the released CoOp+DPC backbone (see above)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--negatives", action="store_true", help="only print how often the sampler finds negatives")
    args = parser.parse_args()
    if args.negatives:
        for name in args.configs:
            recipe = RECIPES[name]
            found, per_anchor = negatives_found(recipe.batch_size, recipe.top_k)
            print(f"{name:<24} batch {recipe.batch_size:>2} K {recipe.top_k}: {found:5.1f} % of anchors with a "
                  f"negative, {per_anchor:.2f} negatives per anchor")
        return
    torch.set_num_threads(args.threads)
    cfg = preset("default")
    world = World(cfg)
    model, _, _ = load_or_pretrain(cfg, progress=False, log=lambda *a: None)
    rows: dict[str, list[float]] = {}
    for seed in args.seeds:
        ctx = runners.Context(cfg, world, model, seed, progress=False, evaluation="val")
        stage1 = image.run_coop if args.backbone == "coop" else released_backbone
        rows.setdefault("CoOp (stage 1)", []).append(seeded(seed, lambda: stage1(ctx))[0])
        rows.setdefault("CoOp same budget", []).append(seeded(seed, lambda: image.run_coop_same_budget(ctx))[0])
        for name in args.configs:
            for ce in {"hn": (False,), "ce": (True,), "both": (False, True)}[args.objective]:
                label = f"{name}{' + CE' if ce else ''}"
                rows.setdefault(label, []).append(seeded(seed, lambda: stage2(ctx, name, ce)))
                print(f"seed {seed} {label}: base {rows[label][-1]:.1f}", flush=True)
    coop = rows["CoOp (stage 1)"]
    print(f"\nvalidation base accuracy (%), seeds {' '.join(map(str, args.seeds))}")
    print(f"{'stage 2':<34} {'per seed':<20} {'mean':>6} {'vs CoOp':>8}")
    for label, values in rows.items():
        delta = statistics.mean(v - c for v, c in zip(values, coop))
        print(f"{label:<34} {' '.join(f'{v:.1f}' for v in values):<20} {statistics.mean(values):6.1f} {delta:+8.2f}")


if __name__ == "__main__":
    main()
