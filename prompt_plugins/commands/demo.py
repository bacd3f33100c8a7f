"""``prompt-plugins demo``: base-to-new prompt tuning on a built-in procedural world.

Pretrains (or loads the cached) tiny CLIP, then runs every method in ``RUNNERS`` per seed and
prints base / new / HM accuracy and seconds per method. A runner is a small function
``runner(ctx) -> (base_acc, new_acc)``; add one to ``RUNNERS`` to add a method.

Every demo prompt is text-side (CoOp context, GA2's coupler and deep text prompts), so the frozen
image/video features are computed once per task and training runs the text tower only.
Cross-entropy and ``HardNegativeOptimizer`` see those features through :class:`FeatureModel`
exactly as they would see a model; ``AttributeAnchorLoss`` takes them directly (its features API).
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

import prompt_plugins as pp

from ..errors import ConfigError
from ._loop import FeatureModel, Timer, accuracy, encode_images, eval_mode, fit, fit_loss, harmonic_mean

#: DPC stage 2 (hard-negative optimiser): anchors per step, K hardest wrong classes, w_b. Its learning
#: rate is w_b x the backbone's: AdamW steps the stored M by ~lr and X = P + (M - P) / w_b moves 1/w_b
#: times as far, so the parallel prompt X then moves at the backbone's own rate.
DPC_BATCH, DPC_TOP_K, DPC_WEIGHT_BASE = 32, 8, 0.2
#: GA2 attribute anchors: weight of the anchor KL, anchor clips per step, anchor clips rendered
ANCHOR_WEIGHT, ANCHOR_BATCH, N_ANCHORS = 1.0, 32, 256


@dataclass
class Task:
    """One downstream task (images or videos) with frozen features precomputed.

    anchor_feats: frozen features of unlabelled clips from the pretraining distribution (GA2's
    "irrelevant" anchor videos); video task only."""

    name: str
    split: Any  # world.data.Split
    train_feats: Tensor
    base_feats: Tensor
    new_feats: Tensor
    anchor_feats: Tensor | None = None


@dataclass
class Context:
    cfg: Any
    world: Any
    model: torch.nn.Module
    seed: int
    tasks: dict[str, Task]
    steps: int
    lr: float
    batch: int
    progress: bool
    artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def base_names(self) -> list[str]:
        return [self.world.classnames[i] for i in self.world.base]

    @property
    def scale(self) -> float:
        return self.model.logit_scale.exp().item()


def _seeded(seed: int, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` (which may initialise parameters from the global generator) under ``seed``,
    leaving the caller's global RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def _check_text_side(adapter: Any) -> None:
    target = getattr(adapter, "target", adapter)
    if target.prompt().visual is not None:
        raise ConfigError("the demo trains on precomputed image features: its prompts must be text-side only")


@torch.no_grad()
def evaluate(ctx: Context, task: Task, adapter: Any) -> tuple[float, float]:
    """(base acc, new acc): base test items among the base classes, new among the new classes."""
    world, split = ctx.world, task.split
    with eval_mode(adapter):
        base = accuracy(task.base_feats @ adapter.encode_text(world.base).t(), _local(split.test_base_y, world.base))
        new = accuracy(task.new_feats @ adapter.encode_text(world.new).t(), _local(split.test_new_y, world.new))
    return base, new


def _local(y: Tensor, classes: list[int]) -> Tensor:
    lookup = {c: i for i, c in enumerate(classes)}
    return torch.tensor([lookup[int(v)] for v in y])


def train_ce(ctx: Context, task: Task, adapter: Any, *, desc: str,
             extra_loss: Callable[[], Tensor] | None = None) -> None:
    """Cross-entropy over the base classes on the base few-shot set (+ ``extra_loss()`` per step)."""
    _check_text_side(adapter)
    head = FeatureModel(adapter, ctx.scale)
    base = ctx.world.base
    targets = _local(task.split.train_y, base)
    extra = None if extra_loss is None else (lambda idx: extra_loss())
    fit(lambda idx: head(task.train_feats[idx], classes=base), adapter.trainable_parameters(), targets,
        steps=ctx.steps, lr=ctx.lr, batch=ctx.batch, seed=ctx.seed, desc=desc, progress=ctx.progress,
        extra_loss=extra)


def train_dpc(ctx: Context, task: Task, wrapper: pp.DualPromptWrapper, *, desc: str) -> None:
    """DPC stage 2: the parallel prompt trained with the dynamic hard-negative optimiser alone
    (symmetric InfoNCE over anchors and their K hardest base-class negatives, as released)."""
    _check_text_side(wrapper)
    head = FeatureModel(wrapper, ctx.scale)
    feats, labels = task.train_feats, task.split.train_y
    dataset = [(feats[i], int(labels[i])) for i in range(len(labels))]
    top_k = min(DPC_TOP_K, len(ctx.world.base) - 1)  # small worlds have fewer wrong classes
    hn = pp.HardNegativeOptimizer(head, dataset, labels=labels, top_k=top_k, seed=ctx.seed)
    fit_loss(lambda idx: hn(feats[idx], labels[idx]), wrapper.trainable_parameters(), len(labels),
             steps=ctx.steps, lr=ctx.lr * wrapper.weight_base, batch=DPC_BATCH, seed=ctx.seed, desc=desc, progress=ctx.progress)


# ---------------------------------------------------------------------------- runners
def _coop(ctx: Context) -> pp.PromptedCLIP:
    return _seeded(ctx.seed, lambda: pp.wrap(ctx.model, ctx.world.classnames, method="coop", n_ctx=ctx.cfg.n_ctx))


def run_zero_shot(ctx: Context, task_name: str = "image") -> tuple[float, float]:
    prompted = pp.wrap(ctx.model, ctx.world.classnames, method="coop", n_ctx=1)
    with prompted.disabled():
        result = evaluate(ctx, ctx.tasks[task_name], prompted)
    prompted.eject()
    return result


def run_coop(ctx: Context, task_name: str = "image") -> tuple[float, float]:
    prompted = _coop(ctx)
    train_ce(ctx, ctx.tasks[task_name], prompted, desc=f"CoOp ({task_name}, seed {ctx.seed})")
    ctx.artifacts[f"coop/{task_name}"] = prompted
    return evaluate(ctx, ctx.tasks[task_name], prompted)


def _tuned(ctx: Context, key: str, runner: Callable[[Context], Any]) -> Any:
    """The tuned adapter ``key`` of this seed, running its method first if it has not run."""
    if key not in ctx.artifacts:
        runner(ctx)
    return ctx.artifacts[key]


def _dpc_on(ctx: Context, task_name: str, prompted: pp.PromptedCLIP, label: str) -> tuple[float, float]:
    """DPC on top of a tuned prompt: the tuned prompt is the frozen backbone prompt P, a parallel
    copy is tuned for base classes (w_b = 0.2), new classes keep P (w_n = 0)."""
    wrapper = pp.DualPromptWrapper(prompted, base_classes=ctx.base_names, weight_base=DPC_WEIGHT_BASE)
    train_dpc(ctx, ctx.tasks[task_name], wrapper, desc=f"{label} ({task_name}, seed {ctx.seed})")
    ctx.artifacts[f"{label}/{task_name}"] = wrapper
    return evaluate(ctx, ctx.tasks[task_name], wrapper)


def run_coop_dpc(ctx: Context, task_name: str = "image") -> tuple[float, float]:
    prompted = _tuned(ctx, f"coop/{task_name}", lambda c: run_coop(c, task_name))
    return _dpc_on(ctx, task_name, prompted, "CoOp+DPC")


def attribute_bank(world: Any) -> list[str]:
    """GA2's generic attributes for this world: the base colours, every shape and motion word (no class
    names, and none of the new classes' colours: tuning never sees those)."""
    from ..world.classes import MOTIONS

    return [*world.colours[: world.config.n_colours // 2], *world.shapes, *MOTIONS]


def run_ga2(ctx: Context) -> tuple[float, float]:
    """GA2 on videos. The hard prompt is the CoOp context tuned on the *image* task of this seed
    (another dataset, as GA2 uses prompts tuned on Kinetics); the soft tokens and the mapping layer
    train with cross-entropy + the attribute-anchor KL on unlabelled anchor clips (pretraining-style,
    base colours only) over the attribute bank, the prompted side reading it through the learned context."""
    hard = _tuned(ctx, "coop/image", lambda c: run_coop(c, "image")).prompt.ctx.detach().clone()
    prompted = _seeded(ctx.seed, lambda: pp.wrap(ctx.model, ctx.world.classnames, method="ga2", hard_prompt=hard,
                                                 n_visual_ctx=0))
    task = ctx.tasks["video"]
    anchor_loss = pp.AttributeAnchorLoss(attribute_bank(ctx.world), weight=ANCHOR_WEIGHT, bank_side="prompted",
                                         frozen_template="a photo of a {}.", scale=ctx.scale)
    bank = anchor_loss.frozen_bank_features(prompted)
    g = torch.Generator().manual_seed(ctx.seed)

    def anchor_term() -> Tensor:
        a = task.anchor_feats[torch.randperm(len(task.anchor_feats), generator=g)[:ANCHOR_BATCH]]
        # text-side prompts leave the anchors' image features frozen: prompted == frozen features
        return anchor_loss(a, bank, frozen_anchor_features=a,
                           prompted_bank_features=anchor_loss.prompted_bank_features(prompted))

    train_ce(ctx, task, prompted, desc=f"GA2 (video, seed {ctx.seed})", extra_loss=anchor_term)
    ctx.artifacts["ga2/video"] = prompted
    return evaluate(ctx, task, prompted)


def run_ga2_dpc(ctx: Context) -> tuple[float, float]:
    return _dpc_on(ctx, "video", _tuned(ctx, "ga2/video", run_ga2), "GA2+DPC")


@dataclass(frozen=True)
class Runner:
    name: str
    task: str
    fn: Callable[[Context], tuple[float, float]]


#: methods in run order (later ones reuse earlier results of the same seed)
RUNNERS: list[Runner] = [
    Runner("zero-shot", "image", lambda c: run_zero_shot(c, "image")),
    Runner("CoOp", "image", lambda c: run_coop(c, "image")),
    Runner("CoOp+DPC", "image", lambda c: run_coop_dpc(c, "image")),
    Runner("zero-shot", "video", lambda c: run_zero_shot(c, "video")),
    Runner("CoOp", "video", lambda c: run_coop(c, "video")),
    Runner("GA2", "video", run_ga2),
    Runner("GA2+DPC", "video", run_ga2_dpc),
]


# ---------------------------------------------------------------------------- command
def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="base-to-new prompt tuning on a built-in world of coloured shapes",
                              description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="few-shot / prompt seeds (default: 1)")
    p.add_argument("--plot", metavar="FILE.png", help="save a bar chart of base / new / HM (needs matplotlib)")
    p.add_argument("--methods", nargs="+", metavar="NAME",
                   help="run only these methods (e.g. zero-shot CoOp); default: all")
    p.add_argument("--no-video", action="store_true", help="skip the video task")
    p.add_argument("--steps", type=int, default=1000,
                   help="prompt-tuning steps per method (default: 1000, ~60 epochs of the 16-shot base set)")
    p.add_argument("--lr", type=float, default=2e-3, help="prompt-tuning learning rate (default: 2e-3)")
    p.add_argument("--batch", type=int, default=32, help="few-shot items per step for CE methods (default: 32)")
    p.add_argument("--world", default="default", help=argparse.SUPPRESS)  # "tiny" for tests
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads (default 0: PyTorch's default, one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        out[key] = float(value) if "." in value or "e" in value else int(value)
    return out


def build_tasks(cfg: Any, world: Any, model: torch.nn.Module, seed: int, video: bool, device: str,
                anchors: bool = True) -> dict[str, Task]:
    """The seed's image (and video) tasks with frozen features of the few-shot and test data, and for
    videos (``anchors``) of GA2's anchor clips: unlabelled, unshifted clips of base classes."""
    from ..world import downstream_split
    from ..world.data import render_labels

    frozen = pp.wrap(model, world.classnames, method="coop", n_ctx=1)
    tasks = {}
    for name in ("image", "video") if video else ("image",):
        split = downstream_split(cfg, seed, video=name == "video")
        data = [split.train_x, split.test_base_x, split.test_new_x]
        if name == "video" and anchors:
            rng = np.random.default_rng([cfg.seed, 3, int(seed)])
            labels = np.asarray(world.base)[rng.integers(len(world.base), size=N_ANCHORS)]
            data.append(render_labels(cfg, rng, labels, shifted=False, frames=cfg.frames))
        with frozen.disabled():
            tasks[name] = Task(name, split, *[encode_images(frozen, x, device=device) for x in data])
    frozen.eject()
    return tasks


def main(args: argparse.Namespace) -> int:
    from ..world import World, load_or_pretrain, preset

    if args.plot:
        _check_matplotlib()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = preset(args.world).with_(**_parse_set(args.set))
    world = World(cfg)
    runners = [r for r in RUNNERS if (not args.no_video or r.task != "video")
               and (not args.methods or r.name in args.methods)]
    if not runners:
        raise ConfigError(f"--methods {args.methods} selects nothing; known: {sorted({r.name for r in RUNNERS})}")
    total = time.perf_counter()
    model, cached, seconds = load_or_pretrain(cfg, progress=not args.quiet, device=args.device)
    model.to(args.device)
    print(f"tiny CLIP {'loaded' if cached else 'pretrained'} in {seconds:.1f} s; {world.n_classes} classes "
          f"({len(world.base)} base / {len(world.new)} new, new colours unseen in tuning), "
          f"{cfg.shots} shots per base class, {cfg.n_test} test images per class")
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for seed in args.seeds:
        tasks = build_tasks(cfg, world, model, seed, not args.no_video, args.device,
                            anchors=any(r.name.startswith("GA2") for r in runners))
        ctx = Context(cfg, world, model, seed, tasks, args.steps, args.lr, args.batch, not args.quiet)
        for runner in runners:
            with Timer() as t:  # every runner starts from the seed (dropout masks, inits): same table cached or not
                base, new = _seeded(seed, lambda: runner.fn(ctx))
            results.setdefault((runner.name, runner.task), []).append((base, new, t.seconds))
    print()
    print(format_table(results, args.seeds))
    print(f"\ntotal {time.perf_counter() - total:.1f} s")
    if args.plot:
        save_plot(results, args.plot)
        print(f"saved {args.plot}")
    return 0


def summarise(rows: list[tuple[float, float, float]]) -> tuple[float, float, float, float]:
    """(mean base, mean new, HM of the means, mean seconds) over seeds."""
    base = statistics.mean(r[0] for r in rows)
    new = statistics.mean(r[1] for r in rows)
    return base, new, harmonic_mean(base, new), statistics.mean(r[2] for r in rows)


def format_table(results: dict, seeds: list[int]) -> str:
    header = f"{'method':<12} {'task':<6} {'base':>6} {'new':>6} {'HM':>6} {'s/seed':>7}"
    lines = [f"base-to-new accuracy (%), mean over seeds {' '.join(map(str, seeds))}; HM of the means", header,
             "-" * len(header)]
    for (name, task), rows in results.items():
        s = summarise(rows)
        lines.append(f"{name:<12} {task:<6} {s[0]:6.1f} {s[1]:6.1f} {s[2]:6.1f} {s[3]:7.1f}")
        if len(seeds) > 1:
            per = "  ".join(f"{r[0]:.1f}/{r[1]:.1f}" for r in rows)
            lines.append(f"{'':<12} {'':<6} per seed base/new: {per}")
    return "\n".join(lines)


def _check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'prompt-plugins[demo]' (or pip install matplotlib)") from None


def save_plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{n}\n({t})", summarise(r)) for (n, t), r in results.items()]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4))
    width = 0.27
    for k, (metric, colour) in enumerate((("base", "#4c72b0"), ("new", "#dd8452"), ("HM", "#55a868"))):
        xs = [i + (k - 1) * width for i in range(len(rows))]
        ax.bar(xs, [s[k] for _, s in rows], width, label=metric, color=colour)
    ax.set_xticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    ax.set_title("prompt-plugins demo: base-to-new")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
