"""ViFi-CLIP ``ckpt_epoch_N.pth`` / ``best.pth`` -> a ``coop`` adapter (IVLP deep prompts in both towers).

Layout (spec ga2clip.md §4): ``{"model", "optimizer", "lr_scheduler", "max_accuracy", "epoch", "config"}``;
``model`` keys carry ``module.``; ``config`` is a pickled yacs ``CfgNode``. Mapped keys:

    prompt_learner.ctx                                 -> prompt.ctx          (n, Dt)
    text_encoder.transformer.resblocks.{i}.VPT_shallow -> prompt.text_deep[i-1]
    image_encoder.VPT                                  -> prompt.visual       (nv, Dv)
    image_encoder.transformer.resblocks.{i}.VPT_shallow -> prompt.visual_deep[i-1]

Class buffers (``token_prefix``, ``token_suffix``, ``complete_text_embeddings``) are dropped; backbone
weights are not imported (reported). The yacs config is read as an inert dict, so no code runs;
any other pickled object is refused unless ``allow_unsafe=True``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from . import register_importer
from ._video import backbone_fingerprint, check_options, holds_prompt, read_checkpoint, split_report, stack_layers, \
    strip_module, write_adapter

CLASS_BUFFERS = ("prompt_learner.token_prefix", "prompt_learner.token_suffix", "prompt_learner.complete_text_embeddings")
TEXT_DEEP = "text_encoder.transformer.resblocks.{}.VPT_shallow"
VISUAL_DEEP = "image_encoder.transformer.resblocks.{}.VPT_shallow"


def model_state(obj: Any, path: Path) -> dict:
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise CheckpointError(f"{path} is not a ViFi-CLIP checkpoint: expected a dict with a 'model' state dict")
    return strip_module(obj["model"])


def ivlp_prompts(state: dict, ctx_key: str, used: set[str]) -> tuple[dict[str, Any], dict[str, Any], int | None]:
    """Map IVLP keys shared by ViFi and GA2 -> (tensors named as SoftPrompt's, prompt config, vision width)."""
    if ctx_key not in state:
        raise CheckpointError(f"no {ctx_key!r} in the checkpoint: it holds no text prompt (a fine-tuning run?)")
    ctx = state[ctx_key].float()
    used.add(ctx_key)
    tensors: dict[str, Any] = {"ctx": ctx}
    text_deep = stack_layers(state, TEXT_DEEP, used)
    if text_deep is not None:
        tensors["text_deep"] = text_deep
    vision_width = None
    visual_depth = None
    if "image_encoder.VPT" in state:
        tensors["visual"] = state["image_encoder.VPT"].float()
        used.add("image_encoder.VPT")
        vision_width = tensors["visual"].shape[1]
        visual_deep = stack_layers(state, VISUAL_DEEP, used)
        if visual_deep is not None:
            tensors["visual_deep"] = visual_deep
        visual_depth = 1 + (0 if visual_deep is None else visual_deep.shape[0])
    config = {
        "n_ctx": ctx.shape[0], "depth": 1 + (0 if text_deep is None else text_deep.shape[0]),
        "n_visual_ctx": 0 if vision_width is None else tensors["visual"].shape[0], "visual_depth": visual_depth,
        "init_std": 0.02,
    }
    return tensors, config, vision_width


def detect(path: Path) -> bool:
    return holds_prompt(path, "model", "prompt_learner.ctx")


def convert(path: str | os.PathLike, out_dir: str | os.PathLike, *, classnames: list[str] | None = None,
            allow_unsafe: bool = False, **options: Any) -> Path:
    check_options("vificlip", options, ())
    path = Path(path)
    state = model_state(read_checkpoint(path, allow_unsafe=allow_unsafe), path)
    used: set[str] = set()
    tensors, prompt_cfg, vision_width = ivlp_prompts(state, "prompt_learner.ctx", used)
    dropped = {k for k in state if k in CLASS_BUFFERS}
    report = {"source": str(path), "format": "vificlip", **split_report(state, used, dropped)}
    prompt = {"type": "soft", "ctx_init": None, "class_specific": False, **prompt_cfg}
    return write_adapter(out_dir, method="coop", prompt=prompt, state={f"prompt.{k}": v for k, v in tensors.items()},
                         backbone=backbone_fingerprint(state, tensors["ctx"].shape[1], vision_width),
                         classnames=classnames, report=report)


register_importer("vificlip", detect, convert, "ViFi-CLIP ckpt_epoch_N.pth / best.pth (VL prompting)")
