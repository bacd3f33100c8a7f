"""What the Dassl trainers of CoOp, KgCoOp, MaPLe, IVLP, PromptSRC and PromptKD write, read for the importers.

``save_model`` writes ``{"state_dict", "epoch", "optimizer", "scheduler"[, "val_result"]}`` to
``<run>/<registered name>/model.pth.tar-<epoch>`` (and ``model-best.pth.tar``). MaPLe, IVLP, PromptSRC and PromptKD
register the whole ``CustomCLIP``, so ``state_dict`` holds the frozen towers too (``image_encoder.*``,
``text_encoder.*``, ``logit_scale``) beside ``prompt_learner.*`` (spec backbones.md §0). This module finds those
files, returns their state, names the towers as OpenAI ``clip.model.CLIP`` names them (for ``tower.*`` adapter
weights, ``towers.py``) and reads which prompt words the trainer kept fixed after the learned context.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor

from ..errors import CheckpointError
from ..towers import PREFIX as TOWER_PREFIX, tower_summary
from .remap import strip_module

CKPT_NAME = re.compile(r"^model(\.pth\.tar-(\d+)|-best\.pth\.tar)$")
#: released full-model key prefixes -> ``clip.model.CLIP`` names (the text tower's token embedding is not saved)
TOWER_PREFIXES = (("image_encoder.", "visual."), ("text_encoder.transformer.", "transformer."),
                  ("text_encoder.ln_final.", "ln_final."))
TOWER_KEYS = {"text_encoder.positional_embedding": "positional_embedding",
              "text_encoder.text_projection": "text_projection", "logit_scale": "logit_scale"}


def find_dassl_checkpoint(path: Path, folders: Iterable[str], epoch: int | None = None) -> Path:
    """A checkpoint file, or a run directory holding ``<folder>/model.pth.tar-N`` for one of ``folders`` (epoch
    ``epoch``, else ``model-best.pth.tar``, else the highest N); the run directory itself may hold the files."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"{str(path)!r} is neither a checkpoint file nor a run directory")
    folder = next((path / f for f in folders if (path / f).is_dir()), path)
    if epoch is not None:
        file = folder / f"model.pth.tar-{epoch}"
        if not file.is_file():
            raise CheckpointError(f"{file} does not exist")
        return file
    if (folder / "model-best.pth.tar").is_file():
        return folder / "model-best.pth.tar"
    found = sorted((int(m.group(2)), p) for p in folder.iterdir() if (m := CKPT_NAME.match(p.name)) and m.group(2))
    if not found:
        names = " or ".join(f"{f}/" for f in folders)
        raise CheckpointError(f"no model.pth.tar-N checkpoint in {folder} (a run directory holds {names}model.pth.tar-N)")
    return found[-1][1]


def dassl_state(obj: Any, source: Any, what: str) -> dict[str, Tensor]:
    """The tensors of ``obj["state_dict"]``, ``module.`` prefixes stripped; anything else names what was found."""
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        found = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{source} is not a {what} checkpoint: expected a Dassl dict with 'state_dict', "
                              f"found {found}")
    return strip_module(state)


def tower_tensors(state: dict[str, Tensor], skip: Iterable[str] = ()) -> dict[str, Tensor]:
    """The frozen tower weights of a full-model state, named as ``clip.model.CLIP.state_dict()`` names them;
    prompt tensors (``VPT*``) and the keys in ``skip`` are left out."""
    skip, out = set(skip), {}
    for key, value in state.items():
        if key in skip or "VPT" in key or key.startswith("prompt_learner."):
            continue
        if key in TOWER_KEYS:
            out[TOWER_KEYS[key]] = value
            continue
        for theirs, ours in TOWER_PREFIXES:
            if key.startswith(theirs):
                out[ours + key[len(theirs):]] = value
                break
    return out


def fixed_suffix_tokens(state: dict[str, Tensor], key: str = "prompt_learner.token_suffix") -> Tensor | None:
    """(k, Dt) embeddings of the prompt words the trainer kept fixed after the learned context (MaPLe with N_CTX 2
    and "a photo of a": "of a"), read as the leading rows of ``token_suffix`` that every class shares; None when the
    file has no suffix buffer or fewer than two classes (then nothing can be told apart)."""
    suffix = state.get(key)
    if not isinstance(suffix, Tensor) or suffix.dim() != 3 or suffix.shape[0] < 2:
        return None
    same = (suffix == suffix[:1]).all(dim=2).all(dim=0)
    k = int(same.long().cumprod(0).sum())
    return suffix[0, :k].float().clone() if k else torch.zeros(0, suffix.shape[-1])


def tower_section(state: dict[str, Tensor], keep: bool, skip: Iterable[str] = ()
                  ) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """What an importer of a full-model file stores of its frozen towers: (``tower.*`` tensors when ``keep``, else
    none; the ``imported_from["towers"]`` report: a per-tensor summary that ``from_pretrained`` compares with the
    model it loads into, and whether the weights were kept)."""
    towers = tower_tensors(state, skip)
    report = {"kept": bool(keep and towers), "summary": tower_summary(towers)}
    tensors = {TOWER_PREFIX + k: v.float() if v.is_floating_point() else v for k, v in towers.items()} if keep else {}
    return tensors, report
