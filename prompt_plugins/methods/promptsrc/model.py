"""``wrap(model, classnames, method="promptsrc")``: IVLP deep prompts (the shared ``SoftPrompt``; released shape 4+4
tokens, depth 9/9 capped by the model, "a photo of a"; built as IVLP's) on a ``PromptedCLIP``. Its losses and the aggregation are separate objects a
training loop calls (``losses.py``, ``gpa.py``); saved adapters load through ``coop.model.load_prompted``."""
from __future__ import annotations

from typing import Sequence

from ...model import PromptedCLIP, PromptedOptions
from ...registry import Target
from ..ivlp.model import ivlp_prompted
from .config import PromptSRCPromptConfig


def build_promptsrc(target: Target, classnames: Sequence[str], options: PromptedOptions,
                    prompt: PromptSRCPromptConfig) -> PromptedCLIP:
    """``wrap(model, classnames, method="promptsrc", **options)``."""
    return ivlp_prompted(target, classnames, options, prompt, "promptsrc")
