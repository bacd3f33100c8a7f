"""``evaluate_adapters(plan)``: base / new / HM of adapters written by ``train`` on the split they recorded (a
data set that gives other classes is an error, never a silent re-split), or of zero-shot CLIP; the result
records that ``--json`` writes and ``benchmark`` aggregates:

    {"dataset", "method", "seed", "shots", "base": {"accuracy", "classes", "items"}, "new": {...}, "hm",
     "classnames", "base_classes", "new_classes", "root", "backbone", "backbone_fingerprint", ...}

The backbone of an adapter is the one its record names (the resolved path first, so ``eval`` works from any
folder), checked by the weights' fingerprint: another file found under the recorded name is refused; a
``--backbone`` given explicitly that is not the recorded CLIP is used with a warning naming both (the result
records both fingerprints, and ``benchmark`` never merges it with the recorded backbone's rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sys

import torch

from ..checkpoint import read_adapter
from ..config import Config
from ..data import Task, build_task, read_splits
from ..errors import ConfigError
from .identity import BackboneId, describe_recorded, identify, recorded_backbone
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
    root: str = ""  # the data set's root, resolved
    found: str = "given"  # how the backbone was found: "given" (--backbone), "recorded path", "recorded name"
    used: BackboneId | None = None


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
        root, splits = plan.root or record.root, plan.splits or record.splits_path or record.splits
        classnames = plan.classnames or record.classnames_file
    else:
        if plan.dataset is None or plan.root is None:
            raise ConfigError(f"{where} has no 'run' record (not written by train): pass --dataset and --root to "
                              "name the data it is evaluated on")
        dataset, root, splits, classnames = plan.dataset, plan.root, plan.splits, plan.classnames
        shots, seed = plan.shots or 16, plan.seed if plan.seed is not None else 1
    splits_read = read_splits(plan.dataset or dataset, root, seed=seed, splits_dir=splits, classnames=classnames)
    task = build_task(splits_read, shots, seed)
    if record is not None:
        compare_split(record, task.record(), where)
    if plan.frames is not None and task.kind != "video":
        raise ConfigError(f"--frames is for video data sets; {task.dataset} holds images: drop --frames")
    if plan.backbone is not None:
        backbone, found = plan.backbone, "given"
    elif record is not None:
        backbone, found = recorded_backbone(record, where)
    else:
        raise ConfigError(f"{where}: pass --backbone (the CLIP the adapter was trained on)")
    frames = plan.frames or (record.frames if record else None)
    return Job(adapter, record, task, backbone, frames, str(Path(root).resolve()), found)


def check_job_backbone(job: Job, used: BackboneId) -> None:
    """The backbone found for ``job`` against its record's fingerprint: another CLIP found under the recorded
    name or path is refused; one given with ``--backbone`` is used with a warning naming both."""
    job.used = used
    record, where = job.record, f"--adapter {job.adapter}"
    if record is None or job.adapter is None:
        return
    if not record.backbone_fingerprint:
        if job.found == "recorded name":
            print(f"note: {where}: its record (written before backbone fingerprints) names --backbone "
                  f"{record.backbone!r}, relative to where train ran; using {used.path}, unchecked", file=sys.stderr)
        return
    if record.backbone_fingerprint == used.fingerprint:
        return
    if job.found == "given":
        print(f"warning: {where} was trained on the backbone {describe_recorded(record)}; --backbone {used.spec!r} "
              f"is another CLIP ({used.describe()}): its numbers are not the adapter's own (the result records "
              "both fingerprints)", file=sys.stderr)
        return
    raise ConfigError(f"{where} was trained on the backbone {describe_recorded(record)}, but the file found under its "
                      f"recorded {'path' if job.found == 'recorded path' else 'name'} {job.backbone!r} is another CLIP "
                      f"({used.describe()}); pass --backbone with the CLIP it was trained on")


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
    models: dict[str, tuple[torch.nn.Module, BackboneId]] = {}
    for job in jobs:  # every backbone loaded and checked before any evaluation
        if job.backbone not in models:
            model = load_backbone(job.backbone, plan.backbone_base)
            used = identify(job.backbone, model)  # on the CPU, as train fingerprints it
            models[job.backbone] = model.to(device), used
        check_job_backbone(job, models[job.backbone][1])
    results = []
    for job in jobs:
        model = models[job.backbone][0]
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
           "hm": scores["hm"], "protocol": task.protocol, "adapter": job.adapter, "backbone": job.backbone,
           "classnames": list(task.classnames), "base_classes": task.base_names, "new_classes": task.new_names,
           "root": job.root}
    if job.used is not None:
        out.update(backbone=job.used.path, backbone_fingerprint=job.used.fingerprint)
    if job.record is not None:
        out["recipe"] = job.record.recipe_name
        if job.record.backbone_fingerprint and job.used is not None and job.record.backbone_fingerprint != \
                job.used.fingerprint:
            out["trained_backbone_fingerprint"] = job.record.backbone_fingerprint
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


def adapter_folders(paths: list[str]) -> tuple[list[str], list[str]]:
    """``--adapter`` values -> (adapter folders, notes): adapter folders, or run folders whose ``seed{N}/``
    sub-folders hold adapters. A run folder with an unfinished seed is refused, naming the seed and the command
    that finishes it (averaging only the finished seeds would change the run silently); a folder given twice
    (``RUN RUN/seed1``) is evaluated once, with a note."""
    from ..checkpoint import CONFIG_NAME
    from .run_folder import read_run_record, resume_command, seed_folders, seed_state

    out, notes, seen = [], [], {}
    for p in paths:
        path = Path(p)
        if (path / CONFIG_NAME).is_file():
            found = [str(path)]
        else:
            states = {s: (f, seed_state(f)) for s, f in (seed_folders(path) if path.is_dir() else {}).items()}
            found = [str(f) for f, (state, _) in states.values() if state == "finished"]
            unfinished = [(s, epoch) for s, (_, (state, epoch)) in states.items() if state != "finished"]
            if unfinished:
                seed, epoch = unfinished[0]
                detail = f"interrupted after epoch {epoch}" if epoch else "no epoch of it finished"
                alone = f", or pass the finished seeds alone (--adapter {' '.join(found)})" if found else ""
                raise ConfigError(f"--adapter {p!r}: seed {seed} is unfinished ({detail}); finish it with: "
                                  f"{resume_command(read_run_record(path) or {}, p, seed)}{alone}")
            if not found:
                raise ConfigError(f"--adapter {p!r} is neither an adapter folder (with {CONFIG_NAME}) nor a run folder "
                                  "with seed*/ adapters")
        for folder in found:
            key = Path(folder).resolve()
            if key in seen:
                notes.append(f"{folder} is given twice (also through --adapter {seen[key]}); evaluated once")
                continue
            seen[key] = p
            out.append(folder)
    return out, notes
