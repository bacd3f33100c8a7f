"""promptkd: distil a student (visual prompts + projector, ``methods/promptkd``) from the teacher adapter of
``--teacher`` (any ``PromptedCLIP`` run or adapter, loaded on ``--teacher-backbone``) with the KD loss alone, on
unlabeled items: the full train split of every class (the released transductive protocol) or of the base classes
(``method_options.unlabeled = "base_only"``). The teacher's text features are computed once, when the student is
built; its image features once per batch, without autograd. Model selection: the last epoch, or the released
``best_val`` (``method_options.selection``): the epoch with the best accuracy on the base *test* split."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...backends import resolve
from ...checkpoint import CONFIG_NAME, read_adapter
from ...errors import ConfigError
from ...training import seeded
from .base import Objective, ObjectiveInputs, register_objective


def distill_options(recipe: Any):
    from ...methods.promptkd import DistillOptions

    try:
        return DistillOptions(**recipe.method_options)
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"recipe {recipe.name}: method_options {recipe.method_options} are not PromptKD's "
                          f"({exc}); known: {list(DistillOptions.field_names())}") from None


def teacher_dir(plan: Any, seed: int) -> Path:
    """``--teacher`` for ``seed``: RUN/seed{N} of a run folder, or the adapter folder itself."""
    run = Path(plan.teacher)
    for folder in (run / f"seed{seed}", run):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ConfigError(f"--teacher {plan.teacher!r} holds no adapter for seed {seed} (looked for {run / f'seed{seed}'} "
                      "and the folder itself); pass a teacher run folder or an adapter folder (e.g. a converted "
                      "PromptSRC ViT-L/14 checkpoint)")


def check_teacher_adapter(folder: Path, classnames: list[str]) -> None:
    """The teacher adapter is a plain ``PromptedCLIP`` one whose class list holds every class of the task."""
    config, _ = read_adapter(folder)
    if config.method in ("dpc", "promptkd_dpc"):
        raise ConfigError(f"--teacher {str(folder)!r} is a {config.method} adapter; a teacher is a PromptedCLIP "
                          "adapter (coop, ivlp, promptsrc, ...): pass its stage-1 run")
    if config.classnames is not None:
        missing = [c for c in classnames if c not in set(config.classnames)]
        if missing:
            raise ConfigError(f"--teacher {str(folder)!r} was saved for other classes: it has no {missing[:6]}"
                              f"{' ...' if len(missing) > 6 else ''} of this data set's {len(classnames)}; the "
                              "student scores every class with the teacher's text features: pass a teacher of "
                              "the same data set")


def unlabeled_items(splits: Any, task: Any, recipe: Any) -> list[Any]:
    """The items PromptKD distils on: the whole train split (``unlabeled="all"``) or its base-class items."""
    if distill_options(recipe).unlabeled == "all":
        return list(splits.train)
    base = set(task.base)
    return [it for it in splits.train if it.label in base]


class BaseTestSelection:
    """The released ``best_val``: after every epoch, top-1 accuracy on the base test split (PromptKD's "val" loader
    *is* the base test set); the best epoch's adapter tensors are put back after the last epoch. Selection on a test
    split, offered for parity only. ``state_dict`` / ``load_state_dict`` carry it across ``--resume``."""

    def __init__(self, adapter: Any, task: Any, epochs: int, frames: int | None = None):
        self.adapter, self.task, self.epochs, self.frames = adapter, task, epochs, frames
        self.accuracy, self.epoch, self.state = -1.0, 0, {}

    def end_epoch(self, epoch: int) -> None:
        from ..evaluate import evaluate_half

        device = next(self.adapter.parameters()).device
        acc = evaluate_half(self.adapter, self.task, "base", size=self.adapter.backend.image_size, frames=self.frames,
                            device=device, batch=100, workers=0)["accuracy"]
        if acc > self.accuracy:
            self.accuracy, self.epoch = acc, epoch + 1
            self.state = {k: v.detach().clone() for k, v in self.adapter.adapter_state_dict().items()}
        if epoch + 1 == self.epochs:
            self.adapter.load_adapter_state_dict(self.state)
            print(f"  best_val: epoch {self.epoch} kept (base test accuracy {self.accuracy:.2f}; selection on a test "
                  "split, as released)", flush=True)

    def state_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "epoch": self.epoch, "state": self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accuracy, self.epoch, self.state = float(state["accuracy"]), int(state["epoch"]), dict(state["state"])


def promptkd(inputs: ObjectiveInputs) -> Objective:
    """The student on the task's class list, its teacher from ``--teacher``, the KD loss."""
    from ...methods.promptkd import DistillationLoss, PromptKDDistiller
    from ...model import PromptedCLIP
    from ...registry import from_pretrained, wrap

    model, task, recipe, seed, plan = inputs.model, inputs.task, inputs.recipe, inputs.seed, inputs.plan
    if inputs.teacher_model is None:
        raise ConfigError("--method promptkd needs --teacher RUN_OR_ADAPTER")
    opts = distill_options(recipe)
    folder = teacher_dir(plan, seed)
    teacher = from_pretrained(inputs.teacher_model, folder)
    try:
        if not isinstance(teacher, PromptedCLIP):
            raise ConfigError(f"--teacher {str(folder)!r} loads as a {type(teacher).__name__}; a teacher is a "
                              "PromptedCLIP adapter (coop, ivlp, promptsrc, ...)")
        teacher.to(next(inputs.teacher_model.parameters()).device).eval()
        size, student_size = teacher.backend.image_size, resolve(model).image_size
        if size != student_size:
            raise ConfigError(f"--teacher-backbone takes {size} px images but the student's --backbone {student_size} "
                              "px: the batches are made for the student; use a teacher CLIP of the same input size")
        student = seeded(seed, lambda: wrap(model, task.classnames, method="promptkd", teacher=teacher,
                                            n_visual_ctx=recipe.n_visual_ctx, visual_depth=recipe.visual_depth))
    except BaseException:
        teacher.eject()
        raise
    distiller = PromptKDDistiller(teacher, DistillationLoss(opts.temperature, opts.kd_weight, opts.reduction))
    classes = None if opts.unlabeled == "all" else torch.tensor(task.base)
    notes = [f"promptkd: teacher {folder} ({teacher.method}, {teacher.backend.name}); KD weight {opts.kd_weight:g}, "
             f"T {opts.temperature:g}, reduction {opts.reduction}; unlabeled items: "
             + ("the train split of every class, base and new (transductive, as released)" if opts.unlabeled == "all"
                else "the base classes' train split (inductive), logits over the base classes")]
    end_epoch, stateful = None, {}
    if opts.selection == "best_val":
        selection = BaseTestSelection(student, task, recipe.epochs, plan.frames or recipe.frames)
        end_epoch, stateful = selection.end_epoch, {"best_val": selection}
        notes.append("promptkd: selection best_val keeps the epoch with the best base *test* accuracy (as released)")
    return Objective(student, lambda x, y, epoch: distiller(student, x, classes), student.trainable_parameters,
                     notes=notes, end_epoch=end_epoch, stateful=stateful, close=teacher.eject)


register_objective("promptkd", promptkd, "promptkd", items=unlabeled_items)
