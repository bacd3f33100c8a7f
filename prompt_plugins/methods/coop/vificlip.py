"""Importer of ViFi-CLIP ``ckpt_epoch_N.pth`` / ``best.pth`` -> a ``coop`` adapter (IVLP deep prompts in both towers).

Layout (spec ga2clip.md §4): ``{"model", "optimizer", "lr_scheduler", "max_accuracy", "epoch", "config"}``;
``model`` keys carry ``module.``; ``config`` is a pickled yacs ``CfgNode`` (read as an inert dict). Mapped keys:

    prompt_learner.ctx                                 -> prompt.ctx          (n, Dt)
    text_encoder.transformer.resblocks.{i}.VPT_shallow -> prompt.text_deep[i-1]
    image_encoder.VPT                                  -> prompt.visual       (nv, Dv)
    image_encoder.transformer.resblocks.{i}.VPT_shallow -> prompt.visual_deep[i-1]

Class buffers (``token_prefix``, ``token_suffix``, ``complete_text_embeddings``) are dropped; backbone
weights are not imported (reported).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ...checkpoint import AdapterConfig
from ...config import Config
from ...errors import CheckpointError
from ...importers import Importer, register_importer
from ...importers.remap import backbone_fingerprint, split_report, stack_layers, strip_module
from ...prompts import DeepPromptConfig, SoftPrompt, SoftPromptConfig

CLASS_BUFFERS = ("prompt_learner.token_prefix", "prompt_learner.token_suffix", "prompt_learner.complete_text_embeddings")
TEXT_DEEP = "text_encoder.transformer.resblocks.{}.VPT_shallow"
VISUAL_DEEP = "image_encoder.transformer.resblocks.{}.VPT_shallow"


@dataclass
class VideoImportOptions(Config):
    """classnames: the class list stored in the adapter (optional)."""

    classnames: list[str] | None = None


def model_state(obj: Any, container: str, source: Any, what: str) -> dict[str, Tensor]:
    """``obj[container]`` (``module.`` stripped) of a ViFi/GA2-style checkpoint."""
    if not isinstance(obj, dict) or not isinstance(obj.get(container), dict):
        raise CheckpointError(f"{source} is not a {what} checkpoint: expected a dict with {container!r}")
    return strip_module(obj[container])


def holds_prompt(obj: Any, container: str, key: str) -> bool:
    """Format detection: ``obj[container]`` is a dict holding ``key`` (``module.`` prefixes stripped)."""
    return isinstance(obj, dict) and isinstance(obj.get(container), dict) and key in strip_module(obj[container])


def ivlp_prompts(state: dict, ctx_key: str, used: set[str]) -> tuple[dict[str, Tensor], DeepPromptConfig, int | None]:
    """Map the IVLP keys shared by ViFi and GA2 -> (tensors named as SoftPrompt's, their config, vision width)."""
    if ctx_key not in state:
        raise CheckpointError(f"no {ctx_key!r} in the checkpoint: it holds no text prompt (a fine-tuning run?)")
    ctx = state[ctx_key].float()
    used.add(ctx_key)
    tensors: dict[str, Tensor] = {"ctx": ctx}
    text_deep = stack_layers(state, TEXT_DEEP, used)
    if text_deep is not None:
        tensors["text_deep"] = text_deep
    vision_width = visual_depth = None
    if "image_encoder.VPT" in state:
        tensors["visual"] = state["image_encoder.VPT"].float()
        used.add("image_encoder.VPT")
        vision_width = tensors["visual"].shape[1]
        visual_deep = stack_layers(state, VISUAL_DEEP, used)
        if visual_deep is not None:
            tensors["visual_deep"] = visual_deep
        visual_depth = 1 + (0 if visual_deep is None else visual_deep.shape[0])
    config = DeepPromptConfig(depth=1 + (0 if text_deep is None else text_deep.shape[0]),
                              n_visual_ctx=0 if vision_width is None else tensors["visual"].shape[0],
                              visual_depth=visual_depth)
    return tensors, config, vision_width


def imported_adapter(state: dict[str, Tensor], used: set[str], *, method: str, prompt: dict[str, Any],
                     tensors: dict[str, Tensor], text_width: int, vision_width: int | None, report: dict[str, Any],
                     classnames: list[str] | None) -> tuple[AdapterConfig, dict[str, Tensor]]:
    """The adapter of a ViFi/GA2-style file; warns when backbone tensors were left behind."""
    report = {**report, **split_report(state, used, {k for k in state if k in CLASS_BUFFERS})}
    if report["skipped_backbone"]:
        warnings.warn(f"{report['source']}: {report['skipped_backbone']} backbone tensors were not imported; the prompts "
                      "were trained on that backbone (ViFi-CLIP prompting starts from a K400-fine-tuned CLIP): load "
                      "the same weights into the CLIP model you wrap", stacklevel=4)
    config = AdapterConfig(method=method, prompt=prompt, classnames=classnames, imported_from=report,
                           backbone=backbone_fingerprint(state, text_width, vision_width))
    return config, {f"prompt.{k}": v for k, v in tensors.items()}


def matches(obj: Any) -> bool:
    return holds_prompt(obj, "model", "prompt_learner.ctx")


def remap(obj: Any, options: VideoImportOptions, source: Path) -> tuple[AdapterConfig, dict[str, Tensor]]:
    state = model_state(obj, "model", source, "ViFi-CLIP")
    used: set[str] = set()
    tensors, deep, vision_width = ivlp_prompts(state, "prompt_learner.ctx", used)
    prompt = SoftPrompt.section(SoftPromptConfig(n_ctx=tensors["ctx"].shape[0], **deep.to_dict()))
    return imported_adapter(state, used, method="coop", prompt=prompt, tensors=tensors,
                            text_width=tensors["ctx"].shape[1], vision_width=vision_width,
                            report={"source": str(source), "format": "vificlip"}, classnames=options.classnames)


register_importer(Importer("vificlip", matches, remap, VideoImportOptions,
                           doc="ViFi-CLIP ckpt_epoch_N.pth / best.pth (VL prompting)"))
