"""``wrap(model, classnames, method="promptsrc")``: IVLP deep prompts (the shared ``SoftPrompt``; released shape 4+4
tokens, depth 9/9, "a photo of a") on a ``PromptedCLIP``. Its losses and the aggregation are separate objects a
training loop calls (``losses.py``, ``gpa.py``); saved adapters load through ``coop.model.load_prompted``."""
from __future__ import annotations

from typing import Sequence

from ...model import PromptedCLIP, PromptedOptions
from ...prompts import SoftPrompt
from ...registry import Target
from ...tokenization import check_classnames
from ..coop.model import prompted_clip
from .config import PromptSRCPromptConfig


def build_promptsrc(target: Target, classnames: Sequence[str], options: PromptedOptions,
                    prompt: PromptSRCPromptConfig) -> PromptedCLIP:
    """``wrap(model, classnames, method="promptsrc", **options)``."""
    names = check_classnames(classnames)
    module = SoftPrompt.build(target.backend, target.tokenizer, prompt, n_classes=len(names))
    return prompted_clip(target, names, module, "promptsrc", options)
