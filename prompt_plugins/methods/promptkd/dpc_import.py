"""Released PromptKD+DPC runs (``JREion/DPC`` trainer ``StackSPLE_PromptKD``, ``trainers/sple_promptkd.py``; spec
backbones.md §7.1, dpc.md §6) -> a DPC adapter over a PromptKD student, with the released base and new logits.

What the run's ``VLPromptLearner/model-best.pth.tar`` holds and how it is read:
- the student's P' (``image_encoder.VPT``, visual ``VPT_shallow``, ``VPT_image_trans`` incl. BatchNorm statistics
  the P' route re-estimated): the parallel prompt X of the student tensors;
- ``prompt_learner.ctx`` and ``prompt_learner.text_encoder.transformer.resblocks.{1..}.VPT_shallow``: text prompts
  on a fresh copy of the teacher's text tower (duplicated under ``text_encoder.*``; the student's whole CLIP under
  ``clip_model.*``), which give the base classes their text features. ``ctx`` is X itself in the default
  ``ctx_mode="released"`` (``nn.Parameter(pre_ctx.type(dtype))`` aliases the teacher's fp16 ctx, so the decode is
  the identity, spec dpc.md §2); ``ctx_mode="converse"`` decodes X = P + (M - P) / w_b for runs whose dtype cast
  copied P (a teacher trained in fp32).
P, the backbone, comes from the PromptKD run (``backbone=``); new classes use P and the teacher's own features.

Our DPC keeps one set of BatchNorm statistics (the backbone's, ``student.py``): the run's P' statistics are folded
into its P' BatchNorm weight and bias (exact in eval mode). The text features need the teacher's CLIP, so the
converted adapter (method ``promptkd`` with a ``dpc`` section) is completed by ``from_pretrained(student_clip, dir, teacher=...)``:
the teacher's features (new route, and P) and the base features from the run's text prompts on the teacher's text
tower (X) are computed once and held per route; ``save_pretrained`` then writes a plain ``dpc`` adapter.
Refused: ``WEIGHT_FOR_NEW`` > 0 (released new inference mixes the text prompts and restores the backbone's
projector, which per-tensor mixing cannot express; the PromptKD SPLE configs leave it unset, i.e. train.py's 0.2,
the README passes 0.0). Read as trained, not reproduced for new training: the run's deep prompts (text and visual)
started random (its ``ctx_list`` bug) and its hard-negative scorer ran the teacher with the untuned "a photo of a"
context (its ``ctx_x`` key bug); neither changes the saved tensors' logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from torch import Tensor

from ...checkpoint import AdapterConfig
from ...config import Config, check_choice
from ...errors import CheckpointError, ClassNameError, ConfigError
from ...importers import Importer, register_importer
from ...importers.dassl import dassl_state, find_dassl_checkpoint, tower_section
from ...importers.remap import stack_layers
from ...prompts.base import Prompts
from ...registry import Target
from ...tokenization import check_classnames
from ..dpc.config import DPCSection, check_weights
from .importer import FOLDERS, is_dpc_file, refuse_other_files, student_backbone, student_tensors
from .student import StudentPrompt
from .teacher import check_teacher, teacher_text_features

TEXT_DEEP = ("prompt_learner.text_encoder.transformer.resblocks.{}.VPT_shallow",
             "text_encoder.transformer.resblocks.{}.VPT_shallow")
STATS = ("projector.conv1.1.running_mean", "projector.conv1.1.running_var", "projector.conv1.1.num_batches_tracked")
BN_EPS = 1e-5  # nn.BatchNorm2d's default, as in VPT_image_trans


@dataclass
class PromptKDDPCImportOptions(Config):
    """backbone: the PromptKD run (directory or ``model*.pth.tar``) the DPC run started from (P); classnames: the
    class list, base classes first (required: the file holds no names); base_classes: default the first n_base
    names, n_base = the classes of the run's ``token_prefix`` buffers; weight_base: w_b (``STACK.WEIGHT``);
    weight_new must be 0; ctx_mode: how ``prompt_learner.ctx`` is read (module docstring); epoch / backbone_epoch."""

    backbone: Any = None
    classnames: list[str] | None = None
    base_classes: list[str] | None = None
    weight_base: float = 0.2
    weight_new: float = 0.0
    ctx_mode: Literal["released", "converse"] = "released"
    epoch: int | None = None
    backbone_epoch: int | None = None

    def check(self) -> None:
        if self.backbone is None:
            raise ConfigError("a PromptKD+DPC run stores only the parallel prompt; new classes use the backbone's: "
                              "pass backbone=<the PromptKD run directory or model-best.pth.tar it was trained from> "
                              "(CLI: --backbone PATH)")
        if self.classnames is None:
            raise ConfigError("pass classnames=[...] (CLI: --classnames FILE): the run's class list, base classes "
                              "first; the checkpoint stores no names")
        check_classnames(self.classnames)
        check_weights(self.weight_base, self.weight_new)
        if self.weight_new != 0.0:
            raise ConfigError(f"weight_new={self.weight_new}: released PromptKD+DPC new-class inference with "
                              "WEIGHT_FOR_NEW > 0 mixes the teacher text prompts and restores the backbone's "
                              "projector, which a DPC adapter cannot express; only weight_new=0 (the README's "
                              "setting, new classes = the PromptKD backbone) imports faithfully")
        check_choice("ctx_mode", self.ctx_mode, ("released", "converse"))


def fold_statistics(x: dict[str, Tensor], p: dict[str, Tensor]) -> dict[str, Tensor]:
    """X's BatchNorm weight / bias rewritten to give, with P's running statistics in eval mode, what X's own
    statistics gave: w' = w s_P / s_X, b' = b + w (m_P - m_X) / s_X, s = sqrt(var + eps)."""
    d = {k: v.double() for k, v in x.items() if k.startswith("projector.conv1.1.")}
    m_p, s_p = p[STATS[0]].double(), (p[STATS[1]].double() + BN_EPS).sqrt()
    m_x, s_x = d["projector.conv1.1.running_mean"], (d["projector.conv1.1.running_var"] + BN_EPS).sqrt()
    w, b = d["projector.conv1.1.weight"], d["projector.conv1.1.bias"]
    out = {k: v for k, v in x.items() if k not in STATS}
    out["projector.conv1.1.weight"] = (w * s_p / s_x).float()
    out["projector.conv1.1.bias"] = (b + w * (m_p - m_x) / s_x).float()
    return out


def _base_count(state: dict[str, Tensor]) -> int | None:
    rows = [state[k].shape[0] for k in ("prompt_learner.token_prefix", "prompt_learner.token_prefix2") if k in state]
    return int(sum(rows)) if rows else None


def remap(obj: Any, options: PromptKDDPCImportOptions, source: Path, backbone: Any
          ) -> tuple[AdapterConfig, dict[str, Tensor]]:
    state, back = dassl_state(obj, source, "PromptKD+DPC"), dassl_state(backbone, options.backbone, "PromptKD")
    if not is_dpc_file({"state_dict": state}):
        raise CheckpointError(f"{source} is not a PromptKD+DPC run (no prompt_learner.ctx on a teacher text encoder "
                              "beside VPT_image_trans); a PromptKD student converts with --format promptkd")
    refuse_other_files(back, options.backbone)
    p, section = student_tensors(back, options.backbone, set())
    x, section_x = student_tensors(state, source, set())
    if section_x != section:
        raise CheckpointError(f"the DPC run {source} ({section_x}) and the backbone {options.backbone} ({section}) "
                              "have other prompt shapes: wrong backbone")
    names = list(options.classnames)
    n_base = _base_count(state)
    base = list(options.base_classes) if options.base_classes is not None else None
    if base is None:
        if n_base is None:
            raise ConfigError(f"{source} has no token_prefix buffers to count its base classes: pass base_classes")
        if n_base > len(names):
            raise ClassNameError(f"{source} was trained on {n_base} base classes (token_prefix rows) but only "
                                 f"{len(names)} class names were given; pass the run's class list, base first")
        base = names[:n_base]
    unknown = [c for c in base if c not in names]
    if unknown or (n_base is not None and len(base) != n_base):
        raise ClassNameError(f"base_classes must be {n_base} names of classnames (the run's token_prefix rows); "
                             f"got {len(base)}{', not in classnames: ' + str(unknown) if unknown else ''}")
    ctx = state["prompt_learner.ctx"].float()
    deep = next((d for d in (stack_layers(state, pat, set()) for pat in TEXT_DEEP) if d is not None), None)
    text = {"teacher_prompt.ctx": ctx, **({"teacher_prompt.deep": deep} if deep is not None else {})}
    x = fold_statistics(x, p)
    dual = [n for n in x] + ["teacher_features"]
    tensors = {**{f"dpc.P.{k}": v for k, v in p.items() if k not in STATS},
               **{f"dpc.X.{k}": v for k, v in x.items()},
               **{f"inner.prompt.{k}": p[k] for k in STATS}, **text}
    inner = AdapterConfig(method="promptkd", prompt=StudentPrompt.section(section.replace(features_per_route=True)),
                          classnames=names, backbone=student_backbone(back))
    dpc = DPCSection(mode="released", weight_base=options.weight_base, weight_new=0.0, tensors=dual,
                     base_classes=base, base_indices=[names.index(c) for c in base])
    skip = {k for k in state if k.startswith(("text_encoder.", "clip_model."))}
    _, towers = tower_section(state, False, skip=skip)
    config = AdapterConfig(method="promptkd", classnames=names, backbone=inner.backbone, inner=inner.to_dict(),
                           dpc=dpc.to_dict(), imported_from={"ctx_mode": options.ctx_mode, "towers": towers,
                                                             "backbone_file": str(options.backbone)})
    return config, tensors


# ---------------------------------------------------------------------------------------------- loading
def load_promptkd_dpc(target: Target, config: AdapterConfig, state: dict[str, Tensor],
                      classnames: Sequence[str] | None, options: dict[str, Any]):
    """Complete an imported PromptKD+DPC run with its teacher (``teacher=``, a ``PromptedCLIP`` on the teacher's
    CLIP whose template takes the run's n_ctx context tokens): -> a ``DualPromptWrapper``."""
    from ..coop.model import load_prompted
    from ..dpc import DualPromptWrapper

    if options.get("teacher") is None:
        raise ConfigError(f"{(config.imported_from or {}).get('source', 'this adapter')} is an imported PromptKD+DPC "
                          "run: its text features need the teacher's CLIP: pass teacher=<the teacher PromptedCLIP> "
                          "to from_pretrained (pp.save_pretrained then writes a dpc adapter that needs none)")
    teacher = check_teacher(options.pop("teacher"))
    for key in ("teacher_features", "teacher_classnames"):
        if options.pop(key, None) is not None:
            raise ConfigError(f"{key}= cannot complete a PromptKD+DPC run: its base classes need the teacher's text "
                              "tower; pass teacher=<the teacher PromptedCLIP>")
    dpc = DPCSection.from_dict(config.dpc or {}, where="adapter_config.json 'dpc'")
    names = list(classnames) if classnames is not None else list(config.classnames or [])
    base = options.pop("base_classes", None)
    base = [c for c in names if c in set(dpc.base_classes or [])] if base is None else list(base)
    ctx, deep = state.get("teacher_prompt.ctx"), state.get("teacher_prompt.deep")
    if ctx is None:
        raise CheckpointError("this imported PromptKD+DPC adapter lacks its text prompt 'teacher_prompt.ctx'")
    if teacher.prompt.n_ctx != ctx.shape[0]:
        raise ConfigError(f"the run's text prompt has {ctx.shape[0]} context tokens but the teacher's template "
                          f"takes {teacher.prompt.n_ctx}: pass the teacher the run was trained with")
    if (config.imported_from or {}).get("ctx_mode") == "converse":
        own = teacher.prompt().text.detach().float().cpu()
        ctx = own + (ctx - own) / dpc.weight_base
    p_features = teacher_text_features(teacher, names)
    x_features = p_features.clone()
    if base:
        rows = [names.index(c) for c in base]
        x_features[rows] = teacher_text_features(teacher, base, Prompts(text=ctx, text_deep=deep))
    inner = AdapterConfig.from_dict(config.inner or {}, where="adapter_config.json 'inner'")
    section = StudentPrompt.config_class.from_dict({k: v for k, v in inner.prompt.items() if k != "type"})
    inner = inner.replace(prompt=StudentPrompt.section(section.replace(teacher_classnames=names)))
    inner_state = {k[len("inner."):]: v for k, v in state.items() if k.startswith("inner.")}
    for n in dpc.tensors:
        inner_state[f"prompt.{n}"] = p_features if n == "teacher_features" else state[f"dpc.P.{n}"]
    prompted = load_prompted(target, inner, inner_state, names, options)
    wrapper = DualPromptWrapper(prompted, base, dpc.weight_base, 0.0, "released", prompt_names=dpc.tensors)
    dual = {k: v for k, v in state.items() if k.startswith("dpc.")}
    wrapper.load_adapter_state_dict({**dual, "dpc.P.teacher_features": p_features, "dpc.X.teacher_features": x_features})
    return wrapper


register_importer(Importer(
    "promptkd_dpc", is_dpc_file, remap, PromptKDDPCImportOptions, files={"backbone": "backbone_epoch"},
    locate=lambda path, epoch=None: find_dassl_checkpoint(path, FOLDERS, epoch),
    doc="released PromptKD+DPC VLPromptLearner/model-best.pth.tar + backbone= (the PromptKD run); "
        "from_pretrained needs teacher="))
