"""``Recipe``: one released training setting as a frozen typed record, with builders for a user's own trainer.

    recipe = pp.get_recipe("coop")
    prompted = pp.wrap(model, base_classes, **recipe.wrap_options())
    optimizer = recipe.build_optimizer(prompted.trainable_parameters())
    scheduler = recipe.build_scheduler(optimizer, steps_per_epoch=len(loader))   # optimisation steps
    for epoch in range(recipe.epochs):
        for images, labels in loader:          # batches of recipe.batch_size (per step, all GPUs)
            loss = F.cross_entropy(prompted(images), labels)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            scheduler.step()                   # once per optimisation step, after optimizer.step()

With gradient accumulation, ``steps_per_epoch = len(loader) // recipe.accumulation``. GA2 needs
``hard_prompt=...`` in ``wrap``. DPC stage 2 on a saved stage-1 prompt: ``o = recipe.dpc_options()``,
``dpc = pp.DualPromptWrapper.from_backbone_checkpoint(model, "runs/coop", base_classes=base, **o["wrapper"])``,
``loss = pp.HardNegativeOptimizer(dpc, train_set, **o["objective"])(images, labels)``.
The scheduler is a ``LambdaLR`` that scales each parameter group's initial lr by ``lr_at(epoch) / lr``; to
resume, build it again and ``load_state_dict`` the saved one. ``lr_at`` alone prints the schedule.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Literal

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from ..config import Config, check_fraction, check_int
from ..errors import ConfigError
from .schedules import SCHEDULES, update_epoch

#: the recipe's method -> ``wrap(method=...)``
WRAP_METHOD = {"coop": "coop", "dpc": "dpc", "ga2": "ga2", "ivlp": "ivlp", "maple": "maple", "promptsrc": "promptsrc",
               "kgcoop": "kgcoop", "promptkd": "promptkd"}


def _number(name: str, value: float, low: float, *, strict: bool = False, high: float | None = None,
            high_strict: bool = True) -> None:
    """``value`` is finite and in the range, else a ``ConfigError`` naming ``name``, the value and the range."""
    ok = math.isfinite(value) and (value > low if strict else value >= low)
    if high is not None:
        ok = ok and (value < high if high_strict else value <= high)
    if not ok:
        lo = f"{'(' if strict else '['}{low:g}"
        hi = "inf)" if high is None else f"{high:g}{')' if high_strict else ']'}"
        raise ConfigError(f"{name}={value!r} is out of range: it must be a finite number in {lo}, {hi}")


@dataclass
class Recipe(Config):
    """A released training setting and where it comes from; frozen (use ``replace(**overrides)``).

    source: ``owner/repo@commit:path`` of the config read. optimizer "sgd" (momentum, dampening, nesterov,
    weight_decay) or "adamw" (betas, eps, weight_decay); lr: the peak lr of the prompt parameters.
    batch_size: samples per optimisation step over all ``gpus`` and ``accumulation`` micro-batches.
    schedule: "dassl_cosine" | "ga2_cosine" | "timm_cosine" (``recipes/schedules.py``); warmup_epochs of
    warmup_type "constant" (at warmup_lr) or "linear" (from warmup_lr); the cosine ends at lr·min_lr_ratio;
    lr_update_every: GA2 sets the lr every 10 iterations (1: every step). shots: training samples per class;
    frames: frames per video (None: images). n_ctx .. visual_depth: the prompt, as ``wrap()`` options.
    DPC: weight_base (ω_b), weight_new, top_k hard negatives per anchor image (the batch's images are the
    anchors). GA2: anchor_clips_per_step (extra anchor videos per step, all GPUs), alpha of the anchor term.
    method_options: the method's own released settings (loss weights, aggregation, coupler init, ...) as keyword
    options of that method's typed configs, which check them (e.g. PromptSRC's ``text_weight=25``).
    notes: what was chosen where the released files differ, and what the recipe leaves out.
    """

    name: str
    method: Literal["coop", "dpc", "ga2", "ivlp", "maple", "promptsrc", "kgcoop", "promptkd"]
    source: str
    optimizer: Literal["sgd", "adamw"]
    lr: float
    batch_size: int
    epochs: int
    schedule: Literal["dassl_cosine", "ga2_cosine", "timm_cosine"]
    momentum: float = 0.0
    weight_decay: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    gpus: int = 1
    accumulation: int = 1
    warmup_epochs: int = 0
    warmup_type: Literal["constant", "linear"] = "linear"
    warmup_lr: float = 0.0
    min_lr_ratio: float = 0.0
    lr_update_every: int = 1
    shots: int | None = 16
    frames: int | None = None
    n_ctx: int = 16
    ctx_init: str | None = None
    depth: int = 1
    n_visual_ctx: int = 0
    visual_depth: int | None = None
    weight_base: float | None = None
    weight_new: float | None = None
    top_k: int | None = None
    anchor_clips_per_step: int | None = None
    alpha: float | None = None
    method_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: str = ""

    # -------------------------------------------------------------------------------- frozen, checked
    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_sealed"):
            raise dataclasses.FrozenInstanceError(f"a Recipe is frozen: cannot set {name}={value!r}; "
                                                  f"use recipe.replace({name}=...)")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"a Recipe is frozen: cannot delete {name!r}")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "_sealed", True)

    def check(self) -> None:
        try:
            self._check()
        except ConfigError as exc:
            raise ConfigError(f"recipe {self.name!r}: {exc}") from None

    def _check(self) -> None:
        for name, text in (("name", self.name), ("source", self.source)):
            if not text.strip():
                raise ConfigError(f"{name}={text!r} must be a non-empty string")
        _number("lr", self.lr, 0.0, strict=True)
        _number("momentum", self.momentum, 0.0, high=1.0)
        _number("weight_decay", self.weight_decay, 0.0)
        _number("dampening", self.dampening, 0.0, high=1.0, high_strict=False)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ConfigError(f"nesterov=True needs momentum > 0 and dampening 0, got momentum={self.momentum}, "
                              f"dampening={self.dampening}: set nesterov=False or change them")
        if len(self.betas) != 2:
            raise ConfigError(f"betas={self.betas!r} must be two numbers (beta1, beta2), e.g. (0.9, 0.999)")
        for i, beta in enumerate(self.betas):
            _number(f"betas[{i}]", beta, 0.0, high=1.0)
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        _number("eps", self.eps, 0.0, strict=True)
        for name in ("batch_size", "epochs", "gpus", "accumulation", "lr_update_every"):
            check_int(name, getattr(self, name), 1)
        if self.batch_size % (self.gpus * self.accumulation):
            raise ConfigError(f"batch_size={self.batch_size} is not a multiple of gpus x accumulation = "
                              f"{self.gpus} x {self.accumulation}: change one of them")
        check_int("warmup_epochs", self.warmup_epochs, 0, self.epochs - 1)
        _number("warmup_lr", self.warmup_lr, 0.0)
        check_fraction("min_lr_ratio", self.min_lr_ratio, allow_zero=True)
        for name in ("shots", "frames", "visual_depth"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        check_int("n_ctx", self.n_ctx, 1)
        check_int("depth", self.depth, 1)
        check_int("n_visual_ctx", self.n_visual_ctx, 0)
        if self.ctx_init is not None and not self.ctx_init.strip():
            raise ConfigError(f"ctx_init={self.ctx_init!r} must be words such as 'a photo of a', or None")
        self._check_method_fields()
        bad = [k for k, v in self.method_options.items()
               if not isinstance(k, str) or not isinstance(v, (bool, int, float, str, type(None), list, tuple))]
        if bad:
            raise ConfigError(f"method_options {bad} must map names to numbers, strings or lists (the keyword "
                              "options of the method's configs)")

    def _check_method_fields(self) -> None:
        own = {"dpc": ("weight_base", "weight_new", "top_k"), "ga2": ("anchor_clips_per_step", "alpha")}
        for method, names in own.items():
            for name in names:
                value = getattr(self, name)
                if method != self.method and value is not None:
                    raise ConfigError(f"{name}={value!r} is a {method} setting: leave it None for method "
                                      f"{self.method!r}")
                if method == self.method and value is None:
                    raise ConfigError(f"{name} is required for method {method!r}")
        if self.method == "dpc":
            object.__setattr__(self, "weight_base", check_fraction("weight_base", self.weight_base, allow_zero=False))
            object.__setattr__(self, "weight_new", check_fraction("weight_new", self.weight_new, allow_zero=True))
            check_int("top_k", self.top_k, 1)
        if self.method == "ga2":
            check_int("anchor_clips_per_step", self.anchor_clips_per_step, 0)
            _number("alpha", float(self.alpha), 0.0)
            object.__setattr__(self, "alpha", float(self.alpha))

    # -------------------------------------------------------------------------------- schedule
    @property
    def micro_batch(self) -> int:
        """Samples per GPU per forward pass: batch_size / (gpus x accumulation)."""
        return self.batch_size // (self.gpus * self.accumulation)

    @property
    def min_lr(self) -> float:
        return self.lr * self.min_lr_ratio

    def lr_at(self, epoch: float) -> float:
        """The released schedule's lr at ``epoch`` (fractional, clamped to [0, epochs])."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, float)) or not math.isfinite(epoch):
            raise ConfigError(f"epoch={epoch!r} must be a finite number of epochs")
        t = min(max(float(epoch), 0.0), float(self.epochs))
        return SCHEDULES[self.schedule](t, self.lr, self.epochs, self.warmup_epochs, self.warmup_type,
                                        self.warmup_lr, self.min_lr)

    def epoch_at(self, step: int, steps_per_epoch: int) -> float:
        """The epoch at which the lr of optimisation ``step`` is evaluated (see ``update_epoch``)."""
        return update_epoch(step, steps_per_epoch, self.lr_update_every)

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.epochs * check_int("steps_per_epoch", steps_per_epoch, 1)

    # -------------------------------------------------------------------------------- builders
    def build_optimizer(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """The released optimizer over ``params`` (usually ``adapter.trainable_parameters()``; param-group
        dicts are passed through): SGD(lr, momentum, dampening, weight_decay, nesterov) or
        AdamW(lr, betas, eps, weight_decay)."""
        if isinstance(params, nn.Module):
            raise ConfigError(f"params={type(params).__name__} is a module: pass its trainable parameters, "
                              "e.g. recipe.build_optimizer(prompted.trainable_parameters())")
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        if not params:
            raise ConfigError(f"recipe {self.name!r}: params=[] is empty: pass the parameters to train, e.g. "
                              "prompted.trainable_parameters() (a generator can only be used once)")
        if all(isinstance(p, torch.Tensor) for p in params) and not any(p.requires_grad for p in params):
            raise ConfigError(f"recipe {self.name!r}: none of the {len(params)} params requires grad: pass "
                              "prompted.trainable_parameters(), not the frozen model's parameters")
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, dampening=self.dampening,
                                   weight_decay=self.weight_decay, nesterov=self.nesterov)
        return torch.optim.AdamW(params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)

    def build_scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> LambdaLR:
        """A ``LambdaLR`` to step once per optimisation step (after ``optimizer.step()``): step k runs at
        ``lr_at(epoch_at(k, steps_per_epoch))``. Dassl's lr changes per epoch; GA2's every
        ``lr_update_every`` (10) iterations, as released; ViFi's every step (timm counts micro-batches and
        updates after each optimisation step, so its lr is at most one micro-batch earlier than here)."""
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ConfigError(f"optimizer={type(optimizer).__name__} is not a torch optimizer: pass "
                              "recipe.build_optimizer(...)")
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ConfigError(f"recipe {self.name!r}: steps_per_epoch={steps_per_epoch!r} must be an int >= 1: "
                              "the optimisation steps per epoch, e.g. len(loader) // accumulation")
        lr, spe, every = self.lr, steps_per_epoch, self.lr_update_every
        return LambdaLR(optimizer, lambda step: self.lr_at(update_epoch(step, spe, every)) / lr)

    def wrap_options(self) -> dict[str, Any]:
        """Keyword options of ``pp.wrap(model, classnames, **options)``, ``method`` included, then
        ``method_options`` (the method's own, e.g. MaPLe's ``coupler_init``). GA2 also needs ``hard_prompt=...``
        (its token count sets n_ctx); DPC gets weight_base and weight_new; PromptKD gets its visual prompts only and
        needs ``teacher=...``."""
        options: dict[str, Any] = {"method": WRAP_METHOD[self.method]}
        if self.method == "promptkd":  # the student has visual prompts only; its text side is the teacher's
            return {**options, "n_visual_ctx": self.n_visual_ctx, "visual_depth": self.visual_depth}
        if self.method != "ga2":  # ctx_init None (random context) is passed too: a method's default may be words
            options.update(n_ctx=self.n_ctx, ctx_init=self.ctx_init)
        options.update(depth=self.depth, n_visual_ctx=self.n_visual_ctx)
        if self.visual_depth is not None:
            options["visual_depth"] = self.visual_depth
        if self.method == "dpc":
            options.update(weight_base=self.weight_base, weight_new=self.weight_new)
        return {**options, **self._wrap_method_options(options)}

    def _wrap_method_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The ``method_options`` that are ``wrap`` options of the method (MaPLe's ``coupler_init``, DPC's
        ``backbone``); the others (loss weights, aggregation) are read by the method's training configs."""
        from ..registry import get_method

        types = get_method(options["method"]).option_types({**options, **self.method_options})
        fields = {name for t in types for name in t.field_names()}
        return {k: v for k, v in self.method_options.items() if k in fields}

    def dpc_options(self) -> dict[str, dict[str, Any]]:
        """DPC's stage-2 settings, ``o = {"wrapper": {weight_base, weight_new}, "objective": {top_k}}``, for
        ``DualPromptWrapper(target, base, **o["wrapper"])`` and
        ``HardNegativeOptimizer(dpc, train_set, **o["objective"])``."""
        if self.method != "dpc":
            raise ConfigError(f"recipe {self.name!r} is a {self.method!r} recipe: dpc_options() needs a DPC "
                              "recipe such as get_recipe('dpc')")
        return {"wrapper": {"weight_base": self.weight_base, "weight_new": self.weight_new},
                "objective": {"top_k": self.top_k}}
