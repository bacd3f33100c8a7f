"""What the MaPLe / IVLP importers share: the options, which released trainer wrote a full-model Dassl file (so a
file given to the wrong ``--format`` is refused naming the right one), the class count, the fixed prompt words
kept in ``token_suffix`` and the frozen towers (``importers/dassl.py``), assembled into one adapter."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ...checkpoint import FIXED_WORDS_KEY, AdapterConfig
from ...config import Config
from ...errors import CheckpointError, ClassNameError, UnsupportedModelError
from ...importers.dassl import fixed_suffix_tokens, tower_section
from ...importers.remap import backbone_fingerprint, split_report
from ...prompts.ctx_init import RELEASED_MAX_INIT_TOKENS

PREFIX_KEY, SUFFIX_KEY = "prompt_learner.token_prefix", "prompt_learner.token_suffix"
#: the folders the released trainers register their model under; an importer looks in its own first, then the
#: others, so a run directory given with the wrong ``--format`` is refused naming the right one
RUN_FOLDERS = ("MultiModalPromptLearner", "VLPromptLearner")
#: what each released trainer's state dict is told apart by (``released_format``)
FORMAT_NAMES = {"maple": "MaPLe (MultiModalPromptLearner)", "ivlp": "IVLP (VLPromptLearner)",
                "promptsrc": "PromptSRC", "promptkd": "PromptKD (student)", "promptkd_dpc": "PromptKD+DPC (DPC's stage 2)"}


@dataclass
class ReleasedImportOptions(Config):
    """classnames: the run's class list, in its order (stored in the adapter; also used to read the fixed prompt
    words exactly); epoch: which ``model.pth.tar-N`` of a run directory; keep_towers: store the file's frozen CLIP
    towers with the adapter (``tower.*``, applied while attached) for exact parity with the released model."""

    classnames: list[str] | None = None
    epoch: int | None = None
    keep_towers: bool = False


def released_format(state: dict[str, Tensor]) -> str | None:
    """The released trainer that wrote this full-model state: "maple" (``proj`` / compound prompts), "promptsrc"
    (IVLP keys plus the frozen ``ZS_image_encoder``), "promptkd" (a student: ``VPT_image_trans``, no text
    context), "promptkd_dpc" (DPC's stage 2 over PromptKD: a text context beside ``VPT_image_trans``), "ivlp"
    (``prompt_learner.ctx`` and none of those), None (none of them)."""
    if any(k.startswith(("prompt_learner.proj.", "prompt_learner.compound_prompt")) for k in state):
        return "maple"
    if any("ZS_image_encoder" in k for k in state):
        return "promptsrc"
    projector = any("VPT_image_trans" in k for k in state)
    if "prompt_learner.ctx" not in state:
        return "promptkd" if projector else None
    return "promptkd_dpc" if projector else "ivlp"


def check_format(state: dict[str, Tensor], expected: str, source: Any) -> None:
    """Refuse a file of another released trainer, naming its ``--format``."""
    found = released_format(state)
    if found == expected:
        return
    what = f"a {FORMAT_NAMES[found]} checkpoint: convert it with --format {found}" if found else \
        "no released MaPLe / IVLP / PromptSRC / PromptKD prompt learner (no prompt_learner.ctx)"
    raise CheckpointError(f"{source} is not a {FORMAT_NAMES[expected]} checkpoint; it is {what}")


def class_count(state: dict[str, Tensor], classnames: list[str] | None, source: Any) -> int | None:
    """The number of classes the run's ``token_prefix`` holds, checked against ``classnames``."""
    prefix = state.get(PREFIX_KEY)
    n = int(prefix.shape[0]) if isinstance(prefix, Tensor) and prefix.dim() == 3 else None
    if n is not None and classnames is not None and n != len(classnames):
        raise ClassNameError(f"{source} was trained on {n} classes (token_prefix has {n} rows) but {len(classnames)} "
                             "class names were given; pass the class list of that run, in its order")
    return n


def fixed_words(state: dict[str, Tensor], n_ctx: int, classnames: list[str] | None, source: Any) -> Tensor | None:
    """(k, Dt) embeddings of the words the trainer kept after the context (``importers/dassl.fixed_suffix_tokens``),
    None when there are none or they cannot be told: with more than 4 context tokens the released rule fixes no
    word. The rows every class shares are the fixed words plus any leading tokens all class names share
    ("red circle", "red square"); with ``classnames`` those are told apart with the OpenAI tokenizer."""
    if n_ctx > RELEASED_MAX_INIT_TOKENS:
        return None
    shared = fixed_suffix_tokens(state, SUFFIX_KEY)
    if shared is None or classnames is None:  # without the names, rows all classes share are read as fixed words
        return shared if shared is not None and shared.shape[0] else None
    common = _common_name_tokens(classnames)
    if common is None:
        return shared if shared.shape[0] else None
    if common > shared.shape[0]:
        raise ClassNameError(f"{source}: the class names share {common} leading token(s) but the prompts of the run "
                             f"share only {shared.shape[0]}: these are not the class names of that run")
    k = shared.shape[0] - common
    return shared[:k] if k else None


def _common_name_tokens(classnames: list[str]) -> int | None:
    """How many leading tokens of ``name + "."`` + EOT every class shares (OpenAI BPE, as the released trainers
    tokenize; None when no tokenizer is installed)."""
    from ...backends.openai_clip import _openai_simple_tokenizer, bpe_tokenizer

    try:
        tok = bpe_tokenizer(_openai_simple_tokenizer())
    except UnsupportedModelError:
        return None
    rows = [tok.encode(name.replace("_", " ") + ".") + [tok.eot_id] for name in classnames]
    common = 0
    while all(len(r) > common for r in rows) and len({r[common] for r in rows}) == 1:
        common += 1
    return common


def released_adapter(state: dict[str, Tensor], used: set[str], *, method: str, prompt: dict[str, Any],
                     tensors: dict[str, Tensor], n_ctx: int, text_width: int, vision_width: int | None,
                     options: ReleasedImportOptions, source: Any) -> tuple[AdapterConfig, dict[str, Tensor]]:
    """The adapter of a released full-model file: ``prompt.*`` tensors (fp32), the fixed words (``template.fixed``;
    the template "{}." gets them back as words at load), the towers' report (and ``tower.*`` with
    ``keep_towers``), the keys left out."""
    classnames = list(options.classnames) if options.classnames is not None else None
    class_count(state, classnames, source)
    fixed = fixed_words(state, n_ctx, classnames, source)
    towers, tower_report = tower_section(state, options.keep_towers)
    report = {"towers": tower_report, **split_report(state, used, {k for k in (PREFIX_KEY, SUFFIX_KEY) if k in state})}
    report["skipped_backbone"] = max(0, report["skipped_backbone"] - len(towers))  # kept towers are imported
    config = AdapterConfig(method=method, prompt=prompt, classnames=classnames, imported_from=report,
                           backbone=backbone_fingerprint(state, text_width, vision_width))
    out = {f"prompt.{k}": v.detach().to(torch.float32) for k, v in tensors.items()}
    if fixed is not None:
        out[FIXED_WORDS_KEY] = fixed
    return config, {**out, **towers}
