"""``evaluate_adapters(plan)``: base / new / HM of adapters written by ``train`` on the split they recorded (a
data set that gives other classes is an error, never a silent re-split), or of zero-shot CLIP; the result
records that ``--json`` writes and ``benchmark`` aggregates:

    {"dataset", "method", "seed", "shots", "base": {"accuracy", "classes", "items"}, "new": {...}, "hm", ...}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import read_adapter
from ..config import Config
from ..data import Task, build_task, read_splits
from ..errors import ConfigError
from .plan import check_flag_int, parse_device
from .record import RunRecord, compare_split, read_record


@dataclass
class EvalPlan(Config):
    """The ``eval`` command line (see ``prompt-plugins eval --help``)."""

    adapters: list[str] = field(default_factory=list)
    dataset: str | None = None
    root: str | None = None
    splits: str | None = None
    classnames: str | None = None
    backbone: str | None = None
    backbone_base: str | None = None
    shots: int | None = None
    seed: int | None = None
    frames: int | None = None
    device: str = "cpu"
    workers: int = 0
    threads: int = 0
    batch_size: int = 100
    per_class: bool = False

    def check(self) -> None:
        for flag, value, low in (("--shots", self.shots, 1), ("--seed", self.seed, 0), ("--frames", self.frames, 1),
                                 ("--workers", self.workers, 0), ("--threads", self.threads, 0),
                                 ("--batch-size", self.batch_size, 1)):
            check_flag_int(flag, value, low)
        if not self.adapters and (self.dataset is None or self.root is None or self.backbone is None):
            raise ConfigError("zero-shot evaluation (no --adapter) needs --dataset, --root and --backbone")


@dataclass
class Job:
    adapter: str | None
    record: RunRecord | None
    task: Task
    backbone: str
    frames: int | None


def _resolve(plan: EvalPlan, adapter: str | None) -> Job:
    record = None
    if adapter is not None:
        config, _ = read_adapter(adapter)
        record = read_record(config, f"{adapter}/adapter_config.json")
    where = f"--adapter {adapter}"
    if record is not None:
        for flag, given, saved in (("--shots", plan.shots, record.shots), ("--seed", plan.seed, record.seed)):
            if given is not None and given != saved:
                raise ConfigError(f"{flag} {given} but {where} was trained with {saved}; drop {flag} (eval uses the "
                                  "adapter's record)")
        dataset, shots, seed = record.dataset, record.shots, record.seed
        root, splits = plan.root or record.root, plan.splits or record.splits
    else:
        if plan.dataset is None or plan.root is None:
            raise ConfigError(f"{where} has no 'run' record (not written by train): pass --dataset and --root to "
                              "name the data it is evaluated on")
        dataset, root, splits = plan.dataset, plan.root, plan.splits
        shots, seed = plan.shots or 16, plan.seed if plan.seed is not None else 1
    splits_read = read_splits(plan.dataset or dataset, root, seed=seed, splits_dir=splits, classnames=plan.classnames)
    task = build_task(splits_read, shots, seed)
    if record is not None:
        compare_split(record, task.record(), where)
    backbone = plan.backbone or (record.backbone if record else None)
    if backbone is None:
        raise ConfigError(f"{where}: pass --backbone (the CLIP the adapter was trained on)")
    frames = plan.frames or (record.frames if record else None)
    return Job(adapter, record, task, backbone, frames)


def evaluate_adapters(plan: EvalPlan) -> list[dict[str, Any]]:
    """One result per adapter (or one zero-shot result); every adapter's data set is checked first."""
    from ..registry import from_pretrained, wrap
    from .backbone import check_backbone_spec, load_backbone
    from .evaluate import evaluate

    device = parse_device(plan.device)
    jobs = [_resolve(plan, a) for a in (plan.adapters or [None])]
    for job in jobs:
        check_backbone_spec(job.backbone, plan.backbone_base)
    if plan.threads:
        torch.set_num_threads(plan.threads)
    models: dict[str, torch.nn.Module] = {}
    results = []
    for job in jobs:
        if job.backbone not in models:
            models[job.backbone] = load_backbone(job.backbone, plan.backbone_base).to(device)
        model = models[job.backbone]
        if job.adapter is None:
            adapter, method, zero_shot = wrap(model, job.task.classnames, method="coop", n_ctx=1), "zero-shot", True
        else:
            adapter = from_pretrained(model, job.adapter, classnames=job.task.classnames)
            method, zero_shot = (job.record.method if job.record else adapter.adapter_config().method), False
        from ..backends import resolve

        adapter.to(device)
        try:
            scores = evaluate(adapter, job.task, size=resolve(model).image_size, frames=job.frames, device=device,
                              batch=plan.batch_size, workers=plan.workers, zero_shot=zero_shot)
        finally:
            adapter.eject()
        results.append(result_record(job, method, scores, plan.per_class))
    return results


def result_record(job: Job, method: str, scores: dict[str, Any], per_class: bool) -> dict[str, Any]:
    task = job.task
    halves = {h: {k: v for k, v in scores[h].items() if per_class or k != "per_class"} for h in ("base", "new")}
    shots = 0 if method == "zero-shot" else task.shots  # zero-shot CLIP trains on nothing
    out = {"dataset": task.dataset, "method": method, "seed": task.seed, "shots": shots, **halves,
           "hm": scores["hm"], "protocol": task.protocol, "adapter": job.adapter, "backbone": job.backbone}
    if job.record is not None:
        out["recipe"] = job.record.recipe_name
    return out


def format_result(result: dict[str, Any]) -> str:
    """The lines ``eval`` prints for one result."""
    b, n = result["base"], result["new"]
    head = result["adapter"] or "zero-shot CLIP"
    trained = f", {result['shots']} shots, seed {result['seed']}" if result["shots"] else ""
    lines = [f"{head}: {result['dataset']} ({result['protocol']}), {result['method']}{trained}; "
             f"test items: {b['items']} base / {n['items']} new",
             f"{'base':>7} {'new':>7} {'HM':>7}", f"{b['accuracy']:7.2f} {n['accuracy']:7.2f} {result['hm']:7.2f}"]
    if "per_class" in b:
        lines.append(f"{'class':<40} {'half':<5} {'accuracy':>8}")
        for half in ("base", "new"):
            for name, acc in result[half]["per_class"].items():
                lines.append(f"{name[:40]:<40} {half:<5} {acc:8.2f}")
    return "\n".join(lines)


def adapter_folders(paths: list[str]) -> list[str]:
    """``--adapter`` values: adapter folders, or run folders whose ``seed*/`` sub-folders hold adapters."""
    from ..checkpoint import CONFIG_NAME

    out = []
    for p in paths:
        path = Path(p)
        if (path / CONFIG_NAME).is_file():
            out.append(str(path))
            continue
        seeds = sorted(q for q in path.glob("seed*") if (q / CONFIG_NAME).is_file()) if path.is_dir() else []
        if not seeds:
            raise ConfigError(f"--adapter {p!r} is neither an adapter folder (with {CONFIG_NAME}) nor a run folder "
                              "with seed*/ adapters")
        out += [str(q) for q in seeds]
    return out
