"""``wrap(model, classnames, method="kgcoop")``: CoOp's ``SoftPrompt`` (released: 4 tokens from "a photo of a") on
a ``PromptedCLIP``; the knowledge-guided loss is a separate module (``loss.py``). Saved adapters load through
``coop.model.load_prompted``."""
from __future__ import annotations

from typing import Sequence

from ...model import PromptedCLIP, PromptedOptions
from ...prompts import SoftPrompt
from ...registry import Target
from ...tokenization import check_classnames
from ..coop.model import prompted_clip
from .config import KgCoOpPromptConfig


def build_kgcoop(target: Target, classnames: Sequence[str], options: PromptedOptions,
                 prompt: KgCoOpPromptConfig) -> PromptedCLIP:
    """``wrap(model, classnames, method="kgcoop", **options)``."""
    names = check_classnames(classnames)
    module = SoftPrompt.build(target.backend, target.tokenizer, prompt, n_classes=len(names))
    return prompted_clip(target, names, module, "kgcoop", options)
