"""Importer of the official PromptSRC checkpoints (spec backbones.md §3.6): ``<run>/VLPromptLearner/model.pth.tar-N``,
a Dassl ``save_checkpoint`` dict whose ``state_dict`` is the whole ``CustomCLIP`` (``module.`` prefixes stripped):

    prompt_learner.ctx                                   -> prompt.ctx          (n_t, Dt)  fp16 as released
    text_encoder.transformer.resblocks.{i}.VPT_shallow   -> prompt.text_deep[i-1]
    image_encoder.VPT                                    -> prompt.visual       (n_v, Dv)
    image_encoder.transformer.resblocks.{i}.VPT_shallow  -> prompt.visual_deep[i-1]
    image_encoder.* / text_encoder.* / logit_scale       -> tower.* with keep_towers, else a summary only
    prompt_learner.token_prefix / token_suffix           -> dropped (fixed words read back into the template)
    prompt_learner.ZS_image_encoder.*                    -> dropped: the frozen zero-shot tower, i.e. your own CLIP

Every tensor of the file is the Gaussian aggregate of the run's epochs (the release averaged the whole state dict,
in fp16), so its frozen towers differ slightly from pristine CLIP: ``keep_towers=True`` (``--keep-towers``) stores
them with the adapter for exact parity; by default the prompts run on your CLIP and ``from_pretrained`` warns
(``TowerMismatchWarning``) how far its towers are from the file's. Detected by the ``ZS_image_encoder`` keys, which
only PromptSRC writes (an IVLP file, which lacks them, is the ``ivlp`` format).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ...checkpoint import FIXED_WORDS_KEY, AdapterConfig
from ...config import Config
from ...errors import CheckpointError, ClassNameError
from ...importers import Importer, formats_matching, register_importer
from ...importers.dassl import dassl_state, find_dassl_checkpoint, fixed_suffix_tokens, tower_section
from ...importers.remap import backbone_fingerprint, split_report, strip_module
from ...prompts import SoftPrompt, SoftPromptConfig
from ..coop.vificlip import ivlp_prompts

FOLDER = "VLPromptLearner"
ZS_PREFIX = "prompt_learner.ZS_image_encoder."
CTX = "prompt_learner.ctx"
CLASS_BUFFERS = ("prompt_learner.token_prefix", "prompt_learner.token_suffix")


@dataclass
class PromptSRCImportOptions(Config):
    """classnames: the run's class list, in its order (checked against the file's class count); epoch: which
    ``model.pth.tar-N`` of a run directory; keep_towers: store the file's (aggregated) tower weights with the
    adapter, for logits equal to the released model's."""

    classnames: list[str] | None = None
    epoch: int | None = None
    keep_towers: bool = False


def locate(path: Path, epoch: int | None = None) -> Path:
    return find_dassl_checkpoint(path, (FOLDER,), epoch)


def _state_of(obj: Any) -> dict[str, Tensor] | None:
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    return strip_module(state) if isinstance(state, dict) else None


def matches(obj: Any) -> bool:
    state = _state_of(obj)
    return state is not None and CTX in state and any(k.startswith(ZS_PREFIX) for k in state)


def class_count(state: dict[str, Tensor]) -> int | None:
    prefix = state.get("prompt_learner.token_prefix")
    return int(prefix.shape[0]) if isinstance(prefix, Tensor) and prefix.dim() == 3 else None


def check_class_count(classnames: list[str] | None, state: dict[str, Tensor], source: Any) -> list[str] | None:
    n = class_count(state)
    if classnames is not None and n is not None and n != len(classnames):
        raise ClassNameError(f"{source} was trained on {n} classes (prompt_learner.token_prefix has {n} rows) but "
                             f"{len(classnames)} class names were given; pass the class list of that run, in its order")
    return None if classnames is None else list(classnames)


def remap(obj: Any, options: PromptSRCImportOptions, source: Path) -> tuple[AdapterConfig, dict[str, Tensor]]:
    state = dassl_state(obj, source, "PromptSRC")
    zs = sorted(k for k in state if k.startswith(ZS_PREFIX))
    if not zs or CTX not in state:
        others = formats_matching(obj, exclude="promptsrc")
        raise CheckpointError(f"{source} is not a PromptSRC checkpoint: it holds no {ZS_PREFIX}* (the frozen zero-shot "
                              "tower every PromptSRC run saves)" + (f"; it reads as {others}: pass --format {others[0]}"
                                                                    if others else ""))
    names = check_class_count(options.classnames, state, source)
    used: set[str] = set()
    tensors, deep, vision_width = ivlp_prompts(state, CTX, used)
    ctx = tensors["ctx"]
    prompt = SoftPrompt.section(SoftPromptConfig(n_ctx=int(ctx.shape[0]), **deep.to_dict()))
    towers, tower_report = tower_section(state, options.keep_towers)
    dropped = {k for k in state if k in CLASS_BUFFERS or k.startswith(ZS_PREFIX)}
    tower_keys = {k for k in state if "VPT" not in k and not k.startswith("prompt_learner.")}
    report = split_report(state, used | tower_keys, dropped)
    report["dropped"] = [k for k in report["dropped"] if not k.startswith(ZS_PREFIX)] + \
        [f"{ZS_PREFIX}* ({len(zs)} tensors: the frozen zero-shot tower, i.e. your own CLIP)"]
    out = {f"prompt.{k}": v for k, v in tensors.items()}
    fixed = fixed_suffix_tokens(state)
    if fixed is not None and fixed.shape[0]:
        out[FIXED_WORDS_KEY] = fixed
    report.update(towers=tower_report, fixed_words=None if fixed is None else int(fixed.shape[0]),
                  classes=class_count(state), epoch=obj.get("epoch"),
                  note="the prompts (and towers) are the run's Gaussian aggregate over epochs (GPA)")
    config = AdapterConfig(method="promptsrc", prompt=prompt, classnames=names, imported_from=report,
                           backbone=backbone_fingerprint(state, int(ctx.shape[-1]), vision_width))
    return config, {**out, **towers}


register_importer(Importer("promptsrc", matches, remap, PromptSRCImportOptions, locate=locate,
                           doc="official PromptSRC VLPromptLearner/model.pth.tar-N (IVLP prompts + ZS_image_encoder; "
                               "keep_towers=True keeps the file's aggregated towers)"))
