"""Frozen-CLIP text features of hand-crafted prompts, the fixed targets that regularised methods pull their learned
prompts towards: one template per class (KgCoOp's per-data-set CoOp prompt) or the mean over a template ensemble
(PromptSRC's textual diversity, 60 ImageNet templates). Computed once per class list with the CLIP's own text
tower and no prompt (what ``PromptedCLIP.disabled()`` runs), without autograd, and cached."""
from __future__ import annotations

import weakref
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError
from .precision import at_least_fp32
from .text_encoder import encode_tokens
from .tokenization import check_template, tokenize_classes


def check_templates(templates: Sequence[str], name: str = "templates") -> tuple[str, ...]:
    """A non-empty list of templates with one ``{}`` each (a single string is refused: pass ``[template]``)."""
    if isinstance(templates, str) or not isinstance(templates, (list, tuple)) or not templates:
        raise ConfigError(f"{name} must be a non-empty list of templates such as ['a photo of a {{}}.'], got "
                          f"{templates!r}")
    return tuple(check_template(f"{name}[{i}]", t) for i, t in enumerate(templates))


def selected_classnames(prompted: Any, classes: Any = None) -> list[str]:
    """The class names of ``prompted`` that ``classes`` selects (names, indices, a mask; None: all)."""
    names = prompted.classnames
    idx = prompted.class_indices(classes)
    return names if idx is None else [names[i] for i in idx.tolist()]


def frozen_text_features(prompted: Any, templates: Sequence[str], classes: Any = None) -> Tensor:
    """(C, E) L2-normalised ``normalise(mean_t f(template_t.format(c)))``: ``f`` the *unnormalised* text features of
    the user's CLIP without prompts, averaged over ``templates`` (PromptSRC's textual diversity; with one template,
    KgCoOp's hand-crafted target). ``prompted``: a ``PromptedCLIP``; ``classes`` selects its classes (default: all).
    No gradient; fp32 (fp64 for a float64 model), on the CLIP's device."""
    templates = check_templates(templates)
    names = selected_classnames(prompted, classes)
    total = None
    with torch.no_grad():
        for template in templates:
            tokens = tokenize_classes(prompted.tokenizer, names, context_length=prompted.backend.context_length,
                                      template=template)
            feats = at_least_fp32(encode_tokens(prompted.backend, tokens))
            total = feats if total is None else total + feats
    return F.normalize(total / len(templates), dim=-1)


class FrozenTextTargets:
    """``frozen_text_features`` computed once per (model, class list) and kept: ``targets(prompted, classes)``.

    The cache holds one entry per selected class list, dtype and device of each CLIP it saw (weakly: a freed
    model's entries go with it). The CLIP is assumed frozen; call ``clear()`` after changing its weights."""

    def __init__(self, templates: Sequence[str]):
        self.templates = check_templates(templates)
        self._cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        #: how many times the features were computed (not served from the cache)
        self.computed = 0

    def __call__(self, prompted: Any, classes: Any = None) -> Tensor:
        backend = prompted.backend
        key = (tuple(selected_classnames(prompted, classes)), backend.dtype, str(backend.device))
        entries = self._cache.setdefault(backend.model, {})
        if key not in entries:
            entries[key] = frozen_text_features(prompted, self.templates, classes)
            self.computed += 1
        return entries[key]

    def clear(self) -> None:
        self._cache = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        first = self.templates[0]
        more = f" + {len(self.templates) - 1} more" if len(self.templates) > 1 else ""
        return f"FrozenTextTargets({first!r}{more})"
