"""PromptKD's distillation loss as a plain module over logits, and the per-batch term a training loop calls (the
teacher's image features once per batch, without autograd; its text features never: the student stores them).

    kd = PromptKDDistiller(teacher, DistillationLoss(temperature=1.0, weight=1000.0))
    loss = kd(student, images)            # student: a promptkd PromptedCLIP (or a DPC wrapper over one)
"""
from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError, ShapeError
from .config import DistillOptions
from .teacher import check_teacher


class DistillationLoss(nn.Module):
    """``weight · T² · Σ_b KL(softmax(teacher / T) ‖ softmax(student / T)) / D`` over (B, C) logits, where D = B·C
    with ``reduction="released"`` (what ``trainers/promptkd.py`` computes: ``reduction='sum'`` divided by
    ``stu_logits.numel()``, so the effective weight shrinks with the class count) or D = B with
    ``reduction="batchmean"`` (the usual batch-mean KL). No cross-entropy: labels are not used. The teacher's
    logits are constants (detached). The released runs use T = 1 and weight 1000 (200 for Aircraft, Flowers,
    DTD); the trainer's default weight is 1."""

    def __init__(self, temperature: float = 1.0, weight: float = 1.0,
                 reduction: Literal["released", "batchmean"] = "released"):
        super().__init__()
        opts = DistillOptions(temperature=temperature, kd_weight=weight, reduction=reduction)
        self.temperature, self.weight, self.reduction = opts.temperature, opts.kd_weight, opts.reduction

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
            raise ShapeError(f"student and teacher logits must both be (B, C), got {tuple(student_logits.shape)} "
                             f"and {tuple(teacher_logits.shape)}")
        t = self.temperature
        log_p = F.log_softmax(student_logits.float() / t, dim=-1)
        q = F.softmax(teacher_logits.detach().float() / t, dim=-1)
        kl = F.kl_div(log_p, q, reduction="sum") * (t * t)
        denom = student_logits.numel() if self.reduction == "released" else student_logits.shape[0]
        return self.weight * kl / denom

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, weight={self.weight}, reduction={self.reduction!r}"


class PromptKDDistiller:
    """The KD term of one batch for any trainer: ``kd(student, images, classes=None) -> loss``.

    teacher: the teacher model (a ``PromptedCLIP`` on its own backbone and device), frozen, put in eval mode: its
    image features are computed once per call under ``torch.no_grad`` and scored against the student's stored teacher text
    features with the teacher's logit scale (the released ``tea_logits``); the student's logits use the student
    CLIP's scale. ``classes``: the columns distilled (None: the student's whole class list, as released).
    Not an ``nn.Module``, so moving or saving the student never touches the teacher."""

    def __init__(self, teacher: Any, loss: DistillationLoss | None = None, **loss_options: Any):
        check_teacher(teacher)
        if loss is not None and loss_options:
            raise ConfigError("pass loss= or the loss options (temperature, weight, reduction), not both")
        self.teacher = teacher.eval()
        self.loss = loss if loss is not None else DistillationLoss(**loss_options)
        #: teacher image passes run (one per call): what tests and logs read
        self.teacher_calls = 0

    @torch.no_grad()
    def teacher_logits(self, images: Tensor, class_features: Tensor) -> Tensor:
        """(B, C) teacher logits: the teacher's image features of ``images`` against ``class_features`` (the
        teacher's normalised text features as the student stores them)."""
        self.teacher_calls += 1
        device = self.teacher.backend.device  # the teacher may live on a device of its own
        logits = self.teacher.logits(self.teacher.encode_image(images.to(device)), class_features.detach().to(device))
        return logits.to(images.device)

    def __call__(self, student: nn.Module, images: Tensor, classes: Any = None) -> Tensor:
        text = student.encode_text(classes)
        teacher = self.teacher_logits(images, text)
        return self.loss(student(images, classes=classes), teacher)
