"""CoOp: a ``SoftPrompt`` (context, optionally class-specific, and IVLP/MaPLe-style deep prompts in both
towers) on a ``PromptedCLIP``. ``load_prompted`` rebuilds any saved ``PromptedCLIP`` (GA2's too)."""
from __future__ import annotations

import warnings
from typing import Any, Sequence

from torch import Tensor

from ...checkpoint import FIXED_WORDS_KEY, AdapterConfig
from ...errors import ClassNameError, ConfigError, TowerMismatchWarning
from ...model import PromptedCLIP, PromptedOptions
from ...prompts import PromptModule, SoftPrompt, SoftPromptConfig, prompt_from_dict
from ...registry import Target
from ...tokenization import check_classnames, words_of_embeddings
from ...towers import PREFIX as TOWER_PREFIX, compare_summaries


def _short(names: Sequence[str]) -> str:
    return f"{list(names[:6])}{' ...' if len(names) > 6 else ''}"


def prompted_clip(target: Target, classnames: Sequence[str], prompt: PromptModule, method: str,
                  options: PromptedOptions) -> PromptedCLIP:
    """A ``PromptedCLIP`` of ``prompt`` on the target's model, with its resolved backend and tokenizer."""
    return PromptedCLIP(target.model, classnames, prompt, tokenizer=target.tokenizer, method=method,
                        backend=target.backend, **options.to_dict())


def build_coop(target: Target, classnames: Sequence[str], options: PromptedOptions,
               prompt: SoftPromptConfig) -> PromptedCLIP:
    """``wrap(model, classnames, method="coop", **options)``."""
    names = check_classnames(classnames)
    module = SoftPrompt.build(target.backend, target.tokenizer, prompt, n_classes=len(names))
    return prompted_clip(target, names, module, "coop", options)


def load_prompted(target: Target, config: AdapterConfig, state: dict[str, Tensor],
                  classnames: Sequence[str] | None, options: dict[str, Any]) -> PromptedCLIP:
    """Rebuild a ``PromptedCLIP`` of any prompt type from its config and load its tensors; ``options``
    (``PromptedOptions`` fields) override the saved ones. (``from_pretrained`` checked the backbone.)"""
    names = list(classnames) if classnames is not None else config.classnames
    if not names:
        raise ConfigError("no class names: pass classnames=[...] (the checkpoint stores none)")
    prompt_cfg = config.prompt or {}
    if prompt_cfg.get("class_specific") and config.classnames and names != config.classnames:
        raise ClassNameError(
            f"the checkpoint has class-specific context for {len(config.classnames)} classes, one per name of "
            f"{_short(config.classnames)} in that order; classnames={_short(names)} would hand classes another's "
            "context. Omit classnames (the saved list is used) or pass the saved list")
    contexts = state.get("prompt.ctx")
    if prompt_cfg.get("class_specific") and contexts is not None and contexts.dim() == 3 \
            and contexts.shape[0] != len(names):  # else a shape error would blame the backbone or prompt length
        raise ClassNameError(
            f"the checkpoint holds class-specific contexts for {contexts.shape[0]} classes, {len(names)} names given "
            f"({_short(names)}): pass the {contexts.shape[0]} class names it was trained with, in its order")
    module = prompt_from_dict(target.backend, target.tokenizer, prompt_cfg, n_classes=len(names))
    state, template = fixed_words_template(target, config, state, options)
    saved = {"template": template, "zero_shot_template": config.zero_shot_template}
    prompted = prompted_clip(target, names, module, config.method, PromptedOptions(**{**saved, **options}))
    prompted.load_adapter_state_dict(state)
    warn_if_towers_differ(config, state, target.model)
    return prompted


def warn_if_towers_differ(config: AdapterConfig, state: dict[str, Tensor], model: Any) -> None:
    """An imported full-model checkpoint whose towers are not the model's (another CLIP, or PromptSRC's aggregated
    towers) and were not kept: a ``TowerMismatchWarning`` saying how many tensors differ and the fix."""
    towers = (config.imported_from or {}).get("towers")
    if not isinstance(towers, dict) or towers.get("kept") or any(k.startswith(TOWER_PREFIX) for k in state):
        return
    found = compare_summaries(towers.get("summary") or {}, model)
    if found is None or not (found["differ"] or found["missing"]):
        return
    source = config.imported_from.get("source", "the checkpoint")
    warnings.warn(
        f"{source}: {found['differ']} of the {found['compared']} frozen tower tensors saved with these prompts differ "
        f"from this model's (relative difference at least {found['min_rel_diff']:.2g})"
        + (f" and {found['missing']} are not in it" if found["missing"] else "")
        + ": the prompts were trained with those towers, so logits differ from the released model's. For exact "
        "parity convert with keep_towers=True (CLI: --keep-towers); to keep this model's towers, ignore this",
        TowerMismatchWarning, stacklevel=4)


def fixed_words_template(target: Target, config: AdapterConfig, state: dict[str, Tensor], options: dict[str, Any]
                         ) -> tuple[dict[str, Tensor], str]:
    """(state without ``template.fixed``, the template): an imported adapter that stores its fixed prompt words as
    token embeddings (``FIXED_WORDS_KEY``) gets them read back as words before its template ("of a {}."), unless
    ``template=`` is given."""
    fixed = state.get(FIXED_WORDS_KEY)
    if fixed is None:
        return state, config.template
    state = {k: v for k, v in state.items() if k != FIXED_WORDS_KEY}
    if "template" in options or fixed.shape[0] == 0:
        return state, config.template
    source = (config.imported_from or {}).get("source", "the imported checkpoint")
    words = words_of_embeddings(target.tokenizer, target.backend.vocabulary(), fixed, source=source)
    return state, f"{words} {config.template}"
