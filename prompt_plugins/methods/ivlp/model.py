"""``wrap(model, classnames, method="ivlp", ...)``: independent deep prompts in both towers (IVLP, spec backbones.md
§2) as the shared ``SoftPrompt`` with depth / n_visual_ctx / visual_depth, the context initialised by the released
ctx-init rule. ``method="coop"`` with the same options is the same module with CoOp's rule (every ``ctx_init`` token
learned) and stays as it was. Saved IVLP adapters load through CoOp's generic ``load_prompted``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ...config import check_choice
from ...model import PromptedCLIP, PromptedOptions
from ...prompts import SoftPrompt, SoftPromptConfig
from ...prompts.ctx_init import CTX_INIT_RULES, split_ctx_init
from ...registry import Target
from ...tokenization import check_classnames
from ..coop.model import prompted_clip

#: the released prompt depth of both towers (``train.py`` defaults of the MaPLe repository)
IVLP_DEPTH = 9


@dataclass
class IVLPOptions(SoftPromptConfig):
    """``wrap(model, classnames, method="ivlp", ...)``; defaults are the released ``train.py`` ones: 2 text and 2
    visual tokens, "a photo of a" read with ``ctx_init_rule`` ("released": the first n_ctx tokens learned, the rest
    fixed in the template: "of a {}."; "whole": every token learned), depth None (the released 9, capped by the
    text tower), visual_depth None (follow depth, capped by the visual tower); the other fields as ``SoftPrompt``."""

    n_ctx: int | None = 2
    ctx_init: str | None = "a photo of a"
    depth: int | None = None  # type: ignore[assignment]
    n_visual_ctx: int = 2
    ctx_init_rule: str = "released"

    def check(self) -> None:
        super().check()
        check_choice("ctx_init_rule", self.ctx_init_rule, CTX_INIT_RULES)


def build_ivlp(target: Target, classnames: Sequence[str], options: PromptedOptions, ivlp: IVLPOptions) -> PromptedCLIP:
    """IVLP prompts (``IVLPOptions``) on the target's model."""
    return ivlp_prompted(target, classnames, options, ivlp, "ivlp")


def ivlp_prompted(target: Target, classnames: Sequence[str], options: PromptedOptions, ivlp: IVLPOptions,
                  method: str) -> PromptedCLIP:
    """A ``PromptedCLIP`` of IVLP prompts saved as ``method`` (PromptSRC's prompts are IVLP's with 4+4 tokens)."""
    names = check_classnames(classnames)
    words = split_ctx_init(target.tokenizer, ivlp.n_ctx, ivlp.ctx_init, ivlp.ctx_init_rule)
    depth = ivlp.depth if ivlp.depth is not None else min(IVLP_DEPTH, target.backend.text_layers)
    soft = {k: v for k, v in ivlp.to_dict().items() if k in SoftPromptConfig.field_names()}
    config = SoftPromptConfig(**{**soft, "n_ctx": words.n_ctx, "ctx_init": words.learned, "depth": depth})
    module = SoftPrompt.build(target.backend, target.tokenizer, config, n_classes=len(names))
    return prompted_clip(target, names, module, method, options.replace(template=words.template(options.template)))
