"""The teacher a user brings, turned into the class text features a PromptKD student stores: computed once per
class list (the released README's "pre-storing" of teacher features; the same numbers as re-encoding every step,
since the teacher is frozen), never per training step."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from ...classes import did_you_mean
from ...errors import ClassNameError, ConfigError
from ...model import PromptedCLIP
from ...prompts.base import Prompts
from .config import TeacherOptions


def check_teacher(teacher: Any) -> PromptedCLIP:
    """``teacher`` is a ``PromptedCLIP`` (any method, any CLIP library and width)."""
    if not isinstance(teacher, PromptedCLIP):
        raise ConfigError(f"teacher must be a PromptedCLIP (pp.wrap / pp.from_pretrained on the teacher's CLIP, any "
                          f"method), got {type(teacher).__name__}; for precomputed features pass teacher_features= "
                          "with teacher_classnames=")
    return teacher


def missing_classes(have: Sequence[str], need: Sequence[str], whose: str) -> None:
    """``ClassNameError`` naming the classes of ``need`` that ``have`` lacks."""
    known = set(have)
    missing = [c for c in need if c not in known]
    if missing:
        raise ClassNameError(
            f"{whose} covers {len(known)} classes and not {missing[:8]}{' ...' if len(missing) > 8 else ''}"
            f"{did_you_mean(missing[0], list(have))}: a PromptKD student scores its classes with its teacher's text "
            "features, so the teacher must know every class of the student's class list. Use a teacher whose class "
            "list holds them (teacher.set_classnames(...) for class-agnostic prompts) or drop those classes")


@torch.no_grad()
def teacher_text_features(teacher: Any, classnames: Sequence[str], prompts: Prompts | None = None) -> Tensor:
    """(C, E_t) L2-normalised text features of ``classnames`` from a teacher ``PromptedCLIP`` (its own prompts, or
    ``prompts``), once, without autograd and in eval mode (the teacher's mode is restored)."""
    check_teacher(teacher)
    missing_classes(teacher.classnames, classnames, "the teacher's class list")
    was_training = teacher.training
    teacher.eval()
    try:
        kwargs = {} if prompts is None else {"prompts": prompts}
        return teacher.encode_text(list(classnames), **kwargs).float().cpu()
    finally:
        teacher.train(was_training)


def resolve_teacher(options: TeacherOptions, classnames: Sequence[str]) -> tuple[Tensor, list[str]]:
    """(features, their class names) for a student over ``classnames``: a teacher model's features for exactly
    those classes, or the given precomputed features (all of their rows; they must cover ``classnames``)."""
    if not options.given:
        raise ConfigError("method='promptkd' needs its teacher: pass teacher=<a PromptedCLIP on the teacher's "
                          "CLIP> (e.g. pp.from_pretrained(vit_l14, 'teacher_adapter')), or teacher_features=<(K, E) "
                          "tensor> with teacher_classnames=[...]")
    if options.teacher is not None:
        return teacher_text_features(options.teacher, classnames), list(classnames)
    names = list(options.teacher_classnames or [])
    missing_classes(names, classnames, "teacher_features (by teacher_classnames)")
    return options.teacher_features, names


def split_teacher_options(options: dict[str, Any]) -> tuple[TeacherOptions, dict[str, Any]]:
    """The teacher keywords of ``options`` as ``TeacherOptions`` and the rest."""
    fields = TeacherOptions.field_names()
    teacher = TeacherOptions(**{k: v for k, v in options.items() if k in fields})
    return teacher, {k: v for k, v in options.items() if k not in fields}
