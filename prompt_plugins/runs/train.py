"""``train(plan)``: every seed of a ``TrainPlan``, checked in full before the backbone loads, then trained with
the recipe and saved as ``OUT/seed{N}/`` (an adapter whose ``run`` section records the split, the method and the
recipe). The ``train`` command is a thin front-end over this."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CONFIG_NAME, RawAdapter, read_adapter, save_pretrained
from ..data import Item, Task, build_task, dataset_for, read_splits
from ..data.splits import IMAGE_EXTS, VIDEO_EXTS
from ..errors import ConfigError
from .objectives import (OBJECTIVES, ObjectiveInputs, build_objective, effective_recipe, method_recipe,
                         single_device, training_items)
from .plan import TrainPlan, parse_device
from .progress import Progress
from .identity import describe_recorded
from .record import LATER_FIELDS, RunRecord, compare_split, read_record
from .state import STATE_NAME, peek_epoch
from .trainer import Interrupted, fit


@dataclass
class SeedJob:
    seed: int
    status: str
    task: Task
    stage1: Path | None = None
    stage1_record: RunRecord | None = None
    epochs: int | None = None
    #: the items the method trains on (None: the task's few-shot base set)
    items: list[Item] | None = None


def stage1_dir(plan: TrainPlan, seed: int) -> Path:
    """DPC's ``--from`` for ``seed``: RUN/seed{N} of a run folder, or the adapter folder itself."""
    run = Path(plan.stage1)
    for folder in (run / f"seed{seed}", run):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ConfigError(f"--from {plan.stage1!r} holds no adapter for seed {seed} (looked for {run / f'seed{seed}'} "
                      "and the folder itself); train the stage-1 run for every seed first")


def check_stage1(folder: Path, task: Task) -> RunRecord:
    config, _ = read_adapter(folder)
    record = read_record(config, str(folder / CONFIG_NAME))
    if record is None:
        raise ConfigError(f"--from {str(folder)!r} was not written by train (no 'run' record), so its split cannot be "
                          "checked; train the stage-1 run with prompt-plugins train")
    compare_split(record, task.record(), f"--from {folder}")
    if (record.shots, record.seed) != (task.shots, task.seed):
        raise ConfigError(f"--from {str(folder)!r} was trained with {record.shots} shots, seed {record.seed}; this run "
                          f"uses {task.shots} shots, seed {task.seed}: DPC's stage 2 must see the same few-shot set")
    return record


def check_stage1_backbone(job: SeedJob, backbone: Any) -> str | None:
    """DPC's stage 2 keeps the stage-1 prompt for the new classes: on another CLIP than the one it was tuned on that
    prompt is not stage 1's any more. Refused, naming both; a record without a fingerprint gives a note."""
    record = job.stage1_record
    if record is None:
        return None
    if not record.backbone_fingerprint:
        return (f"--from {job.stage1}: its record has no backbone fingerprint (written before them): the backbone "
                f"it was tuned on ({record.backbone!r}) is not checked")
    if record.backbone_fingerprint != backbone.fingerprint:
        raise ConfigError(f"--from {str(job.stage1)!r} was tuned on the backbone {describe_recorded(record)}, but "
                          f"--backbone {backbone.spec!r} is another CLIP ({backbone.describe()}): DPC's stage 2 keeps "
                          "the stage-1 prompt for the new classes, so both stages need one backbone; pass --backbone "
                          f"{record.backbone_path or record.backbone}")
    return None


def anchor_items(plan: TrainPlan) -> list[Item]:
    """GA2's anchors: the clips / images of a folder, or the first column of a split file (paths relative to
    ``--anchors-root``, else to the file's folder)."""
    path = Path(plan.anchors)
    if path.is_dir():
        items = [Item(str(p), 0) for p in sorted(path.iterdir()) if not p.name.startswith(".")
                 and (p.is_dir() or p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)]
    else:
        root = Path(plan.anchors_root) if plan.anchors_root else path.parent
        items = [Item(str(root / line.split()[0]), 0) for line in path.read_text().splitlines() if line.strip()]
    if not items:
        raise ConfigError(f"--anchors {plan.anchors!r} holds no clips or images")
    first = Path(items[0].path)
    if not (first.exists() or first.with_suffix("").is_dir()):  # a video file or its frame folder
        raise ConfigError(f"--anchors {plan.anchors!r}: its first clip {str(first)!r} does not exist; pass "
                          "--anchors-root DIR, the folder the list's paths are relative to")
    return items


def prepare(plan: TrainPlan) -> tuple[list[SeedJob], torch.device]:
    """Every check that needs no model: recipe and flags, data set and split of every seed, output folders,
    DPC's stage-1 runs, the device."""
    released = method_recipe(plan.method, plan.recipe)
    epochs = plan.overrides.get("epochs")
    if epochs is not None and "warmup_epochs" not in plan.overrides and released.warmup_epochs >= epochs:
        raise ConfigError(f"--epochs {epochs} leaves no epoch after recipe {released.name}'s {released.warmup_epochs} "
                          f"warm-up epoch(s): pass --warmup-epochs {epochs - 1} (or fewer), or more --epochs")
    recipe = released.replace(**single_device(plan.overrides, released))
    check = OBJECTIVES[plan.method].check_recipe
    if check is not None:
        check(recipe)
    device = parse_device(plan.device)
    statuses = plan.check_out()
    shots = plan.shots or released.shots or 16
    jobs, splits = [], None
    for seed in plan.seeds:
        if splits is None or splits.shots_given:
            splits = read_splits(plan.dataset, plan.root, seed=seed, splits_dir=plan.splits, classnames=plan.classnames)
        job = SeedJob(seed, statuses[seed], build_task(splits, shots, seed))
        check_task(plan, job.task)
        if job.task.kind == "video" and (plan.frames or recipe.frames) is None:
            raise ConfigError(f"{job.task.dataset} holds videos and recipe {recipe.name} sets no frame count: pass "
                              "--frames T (ViFi-CLIP samples 32)")
        if plan.stage1 is not None:
            job.stage1 = stage1_dir(plan, seed)
            job.stage1_record = check_stage1(job.stage1, job.task)
        if plan.teacher is not None:
            from .objectives.promptkd import check_teacher_adapter, teacher_dir

            check_teacher_adapter(teacher_dir(plan, seed), job.task.classnames)
        job.items = training_items(plan.method, splits, job.task, recipe)
        jobs.append(job)
    if plan.anchors is not None:
        anchor_items(plan)
    from .backbone import check_backbone_spec

    check_backbone_spec(plan.backbone, plan.backbone_base)
    if plan.teacher_backbone is not None:
        check_backbone_spec(plan.teacher_backbone)
    return jobs, device


def check_task(plan: TrainPlan, task: Task) -> None:
    """What the data set read says of the flags: one base class trains nothing; ``--frames`` needs videos."""
    if len(task.base) < 2:
        raise ConfigError(f"{task.dataset} has {len(task.classnames)} classes, so {len(task.base)} base class: "
                          "cross-entropy over one class is 0 whatever the prompt, and training would change nothing; "
                          "base-to-new training needs at least 2 base classes (3 classes or more in the data set)")
    if plan.frames is not None and task.kind != "video":
        raise ConfigError(f"--frames is for video data sets; {task.dataset} holds images: drop --frames")


def seed_recipe(plan: TrainPlan, backend: Any) -> tuple[Any, list[str]]:
    """The effective recipe (``effective_recipe``) with ``--ctx-init`` setting the context length when ``--n-ctx``
    is not given (its token count on this backbone's tokenizer)."""
    recipe, notes = effective_recipe(plan.method, plan.recipe, plan.overrides, backend)
    words = plan.overrides.get("ctx_init")
    if not words or recipe.method in ("ga2", "dpc"):  # GA2's hard prompt and DPC's stage 1 set the context
        return recipe, notes
    count = len(backend.default_tokenizer().encode(words))
    given = plan.overrides.get("n_ctx")
    if given is not None and given != count:
        raise ConfigError(f"--ctx-init {words!r} is {count} tokens but --n-ctx {given}: drop --n-ctx (--ctx-init sets "
                          f"the context length) or pass --n-ctx {count}")
    if count != recipe.n_ctx:
        notes.append(f"--ctx-init {words!r} is {count} tokens: n_ctx {recipe.n_ctx} -> {count}")
        recipe = recipe.replace(n_ctx=count)
    return recipe, notes


def train(plan: TrainPlan) -> list[Path]:
    """Train every seed of ``plan``; returns the adapter folders written."""
    from ..backends import resolve
    from .backbone import load_backbone
    from .identity import identify
    from .run_folder import check_run_folder, settings_of

    jobs, device = prepare(plan)
    if plan.threads:
        torch.set_num_threads(plan.threads)
    model = load_backbone(plan.backbone, plan.backbone_base)
    backbone = identify(plan.backbone, model)
    model = model.to(device)
    teacher = None  # PromptKD's teacher CLIP: its own backbone (default: another copy of --backbone)
    if plan.teacher is not None:
        teacher = load_backbone(plan.teacher_backbone or plan.backbone, plan.backbone_base
                                if plan.teacher_backbone is None else None).to(device)
    notes = [note for job in jobs if (note := check_stage1_backbone(job, backbone))][:1]
    recipe, _ = seed_recipe(plan, resolve(model))
    settings = settings_of(plan, jobs[0].task, recipe, backbone, plan.frames or recipe.frames)
    notes += check_run_folder(plan, settings, [job.seed for job in jobs if job.status == "new"])
    for note in notes:
        print(f"note: {note}", flush=True)
    written = []
    for job in jobs:
        if job.status == "done":
            print(f"seed {job.seed}: {plan.seed_dir(job.seed)} is finished; skipped (--resume)")
            continue
        try:
            written.append(train_seed(plan, job, model, device, backbone, teacher))
        except KeyboardInterrupt:
            raise Interrupted(interrupted_line(plan, job)) from None
    return written


def interrupted_line(plan: TrainPlan, job: SeedJob) -> str:
    """What Ctrl-C prints: where the seed stopped (its training state is kept) and the command that continues."""
    from .run_folder import resume_command

    state = plan.seed_dir(job.seed) / STATE_NAME
    done = peek_epoch(state) if state.is_file() else None
    where = (f"stopped after epoch {done}" + (f" of {job.epochs}" if job.epochs else "") + f" ({state} kept)"
             if done else "stopped during its first epoch (nothing saved for it)")
    return f"seed {job.seed} {where}; continue with: {resume_command(plan, plan.out)}"


def resolved(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def _describe(task: Task, recipe: Any, method: str, items: int) -> str:
    return (f"{task.dataset}: {len(task.classnames)} classes ({len(task.base)} base / {len(task.new)} new), "
            f"{task.shots} shots, seed {task.seed}: {items} training items; {method} with recipe "
            f"{recipe.name} ({recipe.optimizer} lr {recipe.lr:g}, {recipe.epochs} epochs, batch {recipe.batch_size})")


def train_seed(plan: TrainPlan, job: SeedJob, model: torch.nn.Module, device: torch.device, backbone: Any,
               teacher: torch.nn.Module | None = None) -> Path:
    from ..backends import resolve

    backend = resolve(model)
    recipe, notes = seed_recipe(plan, backend)
    job.epochs = recipe.epochs
    frames = plan.frames or recipe.frames
    task, seed, folder = job.task, job.seed, plan.seed_dir(job.seed)
    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / STATE_NAME
    if job.status == "new" and state_path.exists():
        state_path.unlink()
    size = backend.image_size
    items = task.train if job.items is None else job.items
    train_set = dataset_for(task, items, size, frames, train=True, seed=seed)
    anchors = None
    if plan.anchors is not None:
        anchors = dataset_for(task, anchor_items(plan), size, frames, train=True, seed=seed)
    objective = build_objective(plan.method, ObjectiveInputs(model, task, recipe, seed, train_set, plan,
                                                             stage1=job.stage1, anchors=anchors,
                                                             teacher_model=teacher))
    objective.adapter.to(device)  # prompts are built on the CPU
    progress = Progress(recipe.epochs, len(items) // min(recipe.batch_size, len(items)),
                        desc=f"seed {seed}", batch=min(recipe.batch_size, len(items)), enabled=plan.progress)
    n_params = sum(p.numel() for p in objective.params())
    print(_describe(task, recipe, plan.method, len(items)) + f"; {n_params:,} trainable parameters", flush=True)
    for note in notes + objective.notes:
        print(f"  note: {note}", flush=True)
    record = RunRecord(**{**task.record(), "train_items": len(items)}, method=plan.method, recipe=recipe.to_dict(),
                       backbone=plan.backbone, teacher=plan.teacher, teacher_backbone=plan.teacher_backbone,
                       root=str(Path(plan.root).resolve()), splits=plan.splits, frames=frames if task.kind == "video"
                       else None, stage1=str(job.stage1) if job.stage1 else None, hard_prompt=plan.hard_prompt,
                       anchors=plan.anchors, epochs=recipe.epochs, backbone_path=backbone.path,
                       backbone_fingerprint=backbone.fingerprint, splits_path=resolved(plan.splits),
                       classnames_file=resolved(plan.classnames))
    fingerprint = {k: v for k, v in record.to_dict().items() if k not in ("root", "source", *LATER_FIELDS)}
    fingerprint["anchor_weight"] = 1.0 if plan.anchor_weight is None else plan.anchor_weight
    try:
        result = fit(objective, train_set, recipe, seed=seed, device=device, workers=plan.workers,
                     state_path=state_path, plan=fingerprint, resume=job.status == "resume", progress=progress,
                     stop_after=plan.stop_after)
        adapter = objective.adapter
        config = adapter.adapter_config().replace(run=record.to_dict())
        save_pretrained(RawAdapter(config, adapter.adapter_state_dict()), folder)
        state_path.unlink(missing_ok=True)
    finally:
        if objective.close is not None:
            objective.close()
        objective.adapter.eject()
    rate = f", {result.items_per_s:.1f} items/s" if result.seconds else ""
    print(f"seed {seed}: saved {folder} (final loss {result.loss:.4f}, {result.seconds:.1f} s{rate})", flush=True)
    return folder
