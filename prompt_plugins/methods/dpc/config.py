"""DPC's typed configs: the wrapper's options and the ``"dpc"`` section of a saved adapter."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ...config import Config, check_choice, check_fraction
from ...errors import ClassNameError, ConfigError

#: parametrisations of the parallel prompt (see ``methods/dpc/dual.py``); the first is the default
MODES = ("released", "converse", "paper")


def check_weights(weight_base: Any, weight_new: Any) -> tuple[float, float]:
    """w_b in (0, 1] and w_n in [0, 1]."""
    return (check_fraction("weight_base", weight_base, allow_zero=False),
            check_fraction("weight_new", weight_new, allow_zero=True))


@dataclass
class DPCOptions(Config):
    """``DualPromptWrapper`` / ``wrap(method="dpc")`` options.

    base_classes: names or indices of the base classes (None: every class); weight_base: w_b in (0, 1]
    (paper default 0.2); weight_new: w_n in [0, 1] (0: new classes use the backbone prompt P exactly);
    mode: the parametrisation: "released" (what the released code trains), "converse" or "paper";
    backbone (``wrap`` only): the registered method whose prompts DPC dualises ("coop", "ivlp", "maple", ...);
    ``wrap`` then takes that method's options."""

    base_classes: Any = None
    weight_base: float = 0.2
    weight_new: float = 0.0
    mode: str = "released"
    backbone: str = "coop"

    def check(self) -> None:
        self.weight_base, self.weight_new = check_weights(self.weight_base, self.weight_new)
        check_choice("mode", self.mode, MODES)
        if isinstance(self.base_classes, str):
            raise ClassNameError(f"base_classes must be a list, got the single string {self.base_classes!r}")


@dataclass
class DPCStage2Options(Config):
    """What stage 2 optimises beside DPC's hard-negative objective (a DPC recipe's ``method_options``).

    backbone_loss: also run the backbone's own training loss on the base route (its cross-entropy, PromptSRC's
    self-regulation, KgCoOp's knowledge-guided term) with the parallel prompt; False (default) as both released DPC
    trainers, which optimise the hard-negative InfoNCE alone (the framework figure draws it "parallel to other
    backbone losses", unreleased for MaPLe / PromptSRC). backbone_loss_weight: its weight."""

    backbone_loss: bool = False
    backbone_loss_weight: float = 1.0

    def check(self) -> None:
        if not isinstance(self.backbone_loss, bool):
            raise ConfigError(f"backbone_loss must be true or false, got {self.backbone_loss!r}")
        if not isinstance(self.backbone_loss_weight, (int, float)) or isinstance(self.backbone_loss_weight, bool) \
                or not self.backbone_loss_weight >= 0:
            raise ConfigError(f"backbone_loss_weight must be a number >= 0, got {self.backbone_loss_weight!r}")


@dataclass
class DPCLoadOptions(Config):
    """``from_pretrained`` keywords of a DPC adapter: which classes of the new class list are base
    (default: the saved base class names that appear in it)."""

    base_classes: Any = None


@dataclass
class DPCSection(Config):
    """The ``"dpc"`` section of ``adapter_config.json``. tensors: the dualised prompt tensors (names in the
    target); target: "prompted" (a ``PromptedCLIP``, whose config is the adapter's ``"inner"`` section) or
    "foreign" (a CoOp-style model); base_classes / base_indices: the base classes by name and position."""

    mode: Literal["released", "converse", "paper"]
    weight_base: float
    weight_new: float
    tensors: list[str]
    target: Literal["prompted", "foreign"] = "prompted"
    base_classes: list[str] | None = None
    base_indices: list[int] | None = None

    def check(self) -> None:
        check_weights(self.weight_base, self.weight_new)
