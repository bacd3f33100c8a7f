"""KgCoOp's typed options: the prompt (CoOp's ``SoftPrompt`` with the released 4 tokens "a photo of a" as the
defaults) and the knowledge-guided term (``KgCoOpLossConfig``, the fields of a ``kgcoop`` recipe's
``method_options``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...config import Config, check_number, split_options
from ...prompts import SoftPromptConfig
from ...tokenization import check_template


@dataclass
class KgCoOpPromptConfig(SoftPromptConfig):
    """The prompt of ``wrap(method="kgcoop")``: ``SoftPromptConfig`` with KgCoOp's released prompt as the defaults
    (4 context tokens initialised from "a photo of a", template "{}."). Unlike the release, which ignores the
    CTX_INIT string and always uses "a photo of a" (spec backbones.md §4.1), ``ctx_init`` is honoured."""

    n_ctx: int | None = 4
    ctx_init: str | None = "a photo of a"


@dataclass
class KgCoOpLossConfig(Config):
    """weight: W of W·(1 − mean_c cos(t̂_c, ŵ_c)) (released 8.0 for every data set, passed on the command line;
    ``TRAINER.COOP.W``); template: the hand-crafted prompt of the frozen target ŵ (None: the data set's CoOp
    template, ``hand_crafted_template``)."""

    weight: float = 8.0
    template: str | None = None

    def check(self) -> None:
        check_number("weight", self.weight, low=0.0)
        if self.template is not None:
            check_template("template", self.template)


def method_configs(options: Mapping[str, Any], where: str = "recipe method_options") -> KgCoOpLossConfig:
    """``Recipe.method_options`` of a KgCoOp recipe as its typed config (unknown keys are a ``ConfigError``)."""
    (given,) = split_options(where, "kgcoop", dict(options), (KgCoOpLossConfig,))
    return KgCoOpLossConfig(**given)
