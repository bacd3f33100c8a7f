"""PromptKD's typed configs: the student's ``wrap`` options, the teacher a user brings, the distillation settings
(what the recipes' ``method_options`` fill) and the ``"prompt"`` section saved with a student adapter."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from ...config import Config, check_choice, check_int
from ...errors import ConfigError

#: the released student prompt depth (``PROMPT_DEPTH_VISION``): capped by the visual tower when not given
RELEASED_VISUAL_DEPTH = 9
REDUCTIONS = ("released", "batchmean")
#: which unlabeled training items PromptKD distils on (spec backbones.md §5.4)
UNLABELED = ("all", "base_only")
SELECTIONS = ("last", "best_val")


def _check_std(value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"init_std={value} must be a finite number >= 0")


@dataclass
class StudentOptions(Config):
    """The student's prompts (``wrap(model, classnames, method="promptkd", ...)``): ``n_visual_ctx`` visual prompt
    tokens (IVLP's ``VPT``, released 4) in the first ``visual_depth`` blocks of the visual tower (None: the
    released 9, capped by the tower), N(0, ``init_std``²) initialised. The projector into the teacher's feature
    space has no option: its widths come from the two models."""

    n_visual_ctx: int = 4
    visual_depth: int | None = None
    init_std: float = 0.02

    def check(self) -> None:
        check_int("n_visual_ctx", self.n_visual_ctx, 0)
        if self.visual_depth is not None:
            check_int("visual_depth", self.visual_depth, 1)
        _check_std(self.init_std)


@dataclass
class TeacherOptions(Config):
    """The teacher of ``wrap`` / ``from_pretrained``: ``teacher`` = a ``PromptedCLIP`` (any method, any backbone:
    its text features for the class list are computed once, here), or ``teacher_features`` (K, E_t) with
    ``teacher_classnames`` (the K names, in row order), e.g. features saved from a teacher run."""

    teacher: Any = None
    teacher_features: Any = None
    teacher_classnames: list[str] | None = None

    def check(self) -> None:
        if self.teacher is not None and self.teacher_features is not None:
            raise ConfigError("pass teacher= (a PromptedCLIP) or teacher_features= with teacher_classnames=, not both")
        if (self.teacher_features is None) != (self.teacher_classnames is None):
            raise ConfigError("teacher_features= and teacher_classnames= go together: the (K, E) features and "
                              "the K class names of their rows")

    @property
    def given(self) -> bool:
        return self.teacher is not None or self.teacher_features is not None


@dataclass
class DistillOptions(Config):
    """PromptKD's training settings (a recipe's ``method_options``): the KD loss (``temperature``, ``kd_weight``,
    ``reduction`` "released" = Σ KL / (B·C) or "batchmean" = Σ KL / B); which unlabeled items it distils on
    (``unlabeled`` "all": the full train split of every class, base and new, as released, a transductive protocol;
    "base_only": the base classes' train items, logits over the base classes only, inductive); and which epoch is
    kept (``selection`` "last", or the released "best_val": the epoch with the best accuracy on the *base test*
    set, i.e. model selection on a test split)."""

    temperature: float = 1.0
    kd_weight: float = 1.0
    reduction: Literal["released", "batchmean"] = "released"
    unlabeled: Literal["all", "base_only"] = "all"
    selection: Literal["last", "best_val"] = "last"

    def check(self) -> None:
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise ConfigError(f"temperature={self.temperature} must be a finite number > 0")
        if not math.isfinite(self.kd_weight) or self.kd_weight < 0:
            raise ConfigError(f"kd_weight={self.kd_weight} must be a finite number >= 0")
        check_choice("reduction", self.reduction, REDUCTIONS)
        check_choice("unlabeled", self.unlabeled, UNLABELED)
        check_choice("selection", self.selection, SELECTIONS)


@dataclass
class StudentSection(Config):
    """The ``"prompt"`` section of a PromptKD student adapter. ``visual_depth``: the effective depth;
    ``teacher_width``: E_t, the projector's output width; ``teacher_classnames``: the class names of the stored
    teacher text features, in row order (None: none stored, as in a converted released student file: loading then
    needs ``teacher=``); ``features_per_route``: the features are held as a (frozen) parameter so that DPC's two
    routes may carry different class features (an imported PromptKD+DPC run)."""

    n_visual_ctx: int
    visual_depth: int
    teacher_width: int
    init_std: float = 0.02
    teacher_classnames: list[str] | None = None
    features_per_route: bool = False

    def check(self) -> None:
        check_int("n_visual_ctx", self.n_visual_ctx, 0)
        check_int("visual_depth", self.visual_depth, 0)
        check_int("teacher_width", self.teacher_width, 1)
        _check_std(self.init_std)
