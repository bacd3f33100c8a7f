"""Importer of released PromptKD student files (``trainers/promptkd.py``; spec backbones.md §5.6):
``<run>/VLPromptLearner/model-best.pth.tar`` or ``model.pth.tar-N``, the whole student ``CustomCLIP``:
``image_encoder.*`` (the ViT incl. ``VPT`` [n_v, Dv] and ``transformer.resblocks.{1..}.VPT_shallow``),
``VPT_image_trans.conv1.{0,1,3}.*`` (fp16 convs, fp32 BatchNorm with its running statistics) and ``logit_scale``
-> a ``promptkd`` adapter.

The file holds no teacher: the student scores classes with its teacher's text features, which need the teacher's
CLIP (ViT-L/14 in the release) and the teacher's own checkpoint, so a key remap cannot produce them. The adapter
is written without them and ``from_pretrained(model, out_dir, classnames=..., teacher=...)`` computes them once
from a teacher ``PromptedCLIP`` (the released PromptSRC teacher converted and loaded on its ViT-L/14), or takes
precomputed ``teacher_features=`` with ``teacher_classnames=``; ``save_pretrained`` then stores them with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ...checkpoint import AdapterConfig
from ...config import Config
from ...errors import CheckpointError
from ...importers import Importer, register_importer
from ...importers.dassl import dassl_state, find_dassl_checkpoint, tower_section
from ...importers.remap import split_report, stack_layers
from ...tokenization import check_classnames
from .config import StudentSection
from .student import StudentPrompt

FOLDERS = ("VLPromptLearner",)
PROJECTOR = "VPT_image_trans.conv1."
PROJECTOR_KEYS = ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                  "1.num_batches_tracked", "3.weight", "3.bias")
VPT, VPT_DEEP = "image_encoder.VPT", "image_encoder.transformer.resblocks.{}.VPT_shallow"


@dataclass
class PromptKDImportOptions(Config):
    """classnames: the run's class list (optional here: ``from_pretrained`` can take it); epoch: which
    ``model.pth.tar-N`` of a run directory (default: ``model-best.pth.tar``, else the last); keep_towers: store the
    file's own visual tower and logit scale (``tower.*``) for exact parity with the released model."""

    classnames: list[str] | None = None
    epoch: int | None = None
    keep_towers: bool = False

    def check(self) -> None:
        if self.classnames is not None:
            check_classnames(self.classnames)


def _keys(obj: Any) -> set[str]:
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    return set(state) if isinstance(state, dict) else set()


def _strip(keys: set[str]) -> set[str]:
    return {k[7:] if k.startswith("module.") else k for k in keys}


def is_student_file(obj: Any) -> bool:
    keys = _strip(_keys(obj))
    return PROJECTOR + "0.weight" in keys and "prompt_learner.ctx" not in keys


def is_dpc_file(obj: Any) -> bool:
    keys = _strip(_keys(obj))
    return PROJECTOR + "0.weight" in keys and "prompt_learner.ctx" in keys and any(
        k.startswith("prompt_learner.text_encoder.") for k in keys)


def projector_tensors(state: dict[str, Tensor], source: Any) -> dict[str, Tensor]:
    """``VPT_image_trans.conv1.*`` as the student's ``projector.conv1.*`` (floats in fp32)."""
    missing = [PROJECTOR + k for k in PROJECTOR_KEYS if PROJECTOR + k not in state]
    if missing:
        raise CheckpointError(f"{source}: the projector (VPT_image_trans) lacks {missing}")
    return {f"projector.conv1.{k}": (state[PROJECTOR + k].float() if state[PROJECTOR + k].is_floating_point()
                                     else state[PROJECTOR + k].long()) for k in PROJECTOR_KEYS}


def student_tensors(state: dict[str, Tensor], source: Any, used: set[str]) -> tuple[dict[str, Tensor], StudentSection]:
    """The student's prompt tensors (module names) and its section, from a released student (or DPC) state."""
    tensors = projector_tensors(state, source)
    used.update(PROJECTOR + k for k in PROJECTOR_KEYS)
    vpt = state.get(VPT)
    if vpt is not None:
        used.add(VPT)
        if vpt.dim() != 2:
            raise CheckpointError(f"{source}: {VPT} has shape {tuple(vpt.shape)}, expected (n_v, Dv)")
        tensors["visual"] = vpt.float()
        deep = stack_layers(state, VPT_DEEP, used)
        if deep is not None:
            if tuple(deep.shape[1:]) != tuple(vpt.shape):
                raise CheckpointError(f"{source}: deep visual prompts {tuple(deep.shape[1:])} differ from VPT "
                                      f"{tuple(vpt.shape)}")
            tensors["visual_deep"] = deep
    n_v = int(vpt.shape[0]) if vpt is not None else 0
    depth = (1 + (tensors["visual_deep"].shape[0] if "visual_deep" in tensors else 0)) if n_v else 0
    width = int(state[PROJECTOR + "3.weight"].shape[0])
    return tensors, StudentSection(n_visual_ctx=n_v, visual_depth=depth, teacher_width=width)


def student_backbone(state: dict[str, Tensor]) -> dict[str, Any]:
    """The shape facts of the student's CLIP the file reveals (visual tower and image embedding)."""
    fp: dict[str, Any] = {"backend": "released PromptKD checkpoint",
                          "embed_dim": int(state[PROJECTOR + "0.weight"].shape[1])}
    if VPT in state:
        fp["vision_width"] = int(state[VPT].shape[1])
    blocks = {int(k.split(".")[3]) for k in state if k.startswith("image_encoder.transformer.resblocks.")}
    if blocks:
        fp["vision_layers"] = max(blocks) + 1
    return fp


def refuse_other_files(state: dict[str, Tensor], source: Any) -> None:
    """Files this importer must not read as a student, each named with the format to use."""
    if "prompt_learner.ctx" in state:
        if any(k.startswith("prompt_learner.text_encoder.") for k in state):
            raise CheckpointError(f"{source} is a PromptKD+DPC run (prompt_learner.ctx on the teacher's text encoder "
                                  "beside VPT_image_trans), not a PromptKD student: convert it with --format "
                                  "promptkd_dpc --backbone <the PromptKD run it was trained from>")
        raise CheckpointError(f"{source} has prompt_learner.ctx and no PromptKD projector: an IVLP / PromptSRC "
                              "prompt-learner file (e.g. a PromptKD teacher), not a student: convert it with "
                              "--format ivlp or --format promptsrc")
    if PROJECTOR + "0.weight" not in state:
        raise CheckpointError(f"{source} has no VPT_image_trans projector: not a PromptKD student checkpoint")


def remap(obj: Any, options: PromptKDImportOptions, source: Path) -> tuple[AdapterConfig, dict[str, Tensor]]:
    state = dassl_state(obj, source, "PromptKD")
    refuse_other_files(state, source)
    used: set[str] = {"logit_scale"}
    tensors, section = student_tensors(state, source, used)
    towers, tower_report = tower_section(state, options.keep_towers)
    report = split_report(state, used, set())
    config = AdapterConfig(method="promptkd", prompt=StudentPrompt.section(section), classnames=options.classnames,
                           backbone=student_backbone(state), imported_from={**report, "towers": tower_report})
    return config, {**{f"prompt.{k}": v for k, v in tensors.items()}, **towers}


register_importer(Importer(
    "promptkd", is_student_file, remap, PromptKDImportOptions,
    locate=lambda path, epoch=None: find_dassl_checkpoint(path, FOLDERS, epoch),
    doc="released PromptKD student VLPromptLearner/model-best.pth.tar (visual prompts + VPT_image_trans); "
        "from_pretrained needs teacher= (or teacher_features=)"))
