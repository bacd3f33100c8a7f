"""``--backbone`` for train/eval: load a CLIP that is already on disk (never downloads).

  PATH.pt                       OpenAI CLIP checkpoint (``clip.load(path, jit=False)``) or a state dict
  hf:NAME_OR_DIR                transformers ``CLIPModel`` (local files only)
  open_clip:ARCH[:PRETRAINED]   open_clip model; PRETRAINED a local file or a cached tag
  HF_DIR                        a folder with config.json (transformers)
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..files import torch_file_kind


def load_backbone(spec: str) -> nn.Module:
    """Return the CLIP model named by ``spec`` in eval mode on CPU."""
    if spec.startswith("hf:"):
        return _hf(spec[3:])
    if spec.startswith("open_clip:"):
        return _open_clip(spec[len("open_clip:"):])
    path = Path(spec)
    if path.is_dir():
        if (path / "config.json").is_file():
            return _hf(str(path))
        raise ConfigError(f"--backbone {spec!r} is a folder without config.json; pass a checkpoint file, "
                          "hf:NAME or open_clip:ARCH[:PRETRAINED]")
    if not path.is_file():
        raise ConfigError(f"--backbone {spec!r} is not a file on disk; pass an OpenAI CLIP checkpoint path, "
                          "hf:NAME (downloaded already) or open_clip:ARCH[:PRETRAINED]")
    return _openai(path)


def _openai(path: Path) -> nn.Module:
    try:
        import clip
        from clip.model import build_model
    except ImportError:
        raise ConfigError("an OpenAI CLIP checkpoint needs the clip package: pip install 'prompt-plugins[openai]'") from None
    kind = torch_file_kind(path)  # a bogus file is refused from its first bytes, before anything reads it whole
    try:  # a state dict (what torch.save(model.state_dict()) writes) loads without pickled code
        if kind == "safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        state = None
    if isinstance(state, dict) and "visual.proj" in state or isinstance(state, dict) and "text_projection" in state:
        try:
            return build_model(state).float().eval()
        except Exception as exc:
            raise CheckpointError(f"{path} is a state dict but not an OpenAI CLIP one ({exc})") from None
    try:  # an OpenAI release file (TorchScript archive): clip.load rebuilds the eager model
        model, _ = clip.load(str(path), device="cpu", jit=False)
    except Exception as exc:
        raise CheckpointError(f"cannot load {path} as an OpenAI CLIP checkpoint ({type(exc).__name__}: {exc})") from None
    return model.float().eval()


def _hf(name: str) -> nn.Module:
    try:
        from transformers import CLIPModel
    except ImportError:
        raise ConfigError("hf: backbones need transformers: pip install 'prompt-plugins[hf]'") from None
    try:
        return CLIPModel.from_pretrained(name, local_files_only=True).eval()
    except Exception as exc:
        raise CheckpointError(f"transformers CLIPModel {name!r} is not on disk ({type(exc).__name__}); "
                              "download it first or pass a local folder") from None


def _open_clip(spec: str) -> nn.Module:
    try:
        import open_clip
    except ImportError:
        raise ConfigError("open_clip: backbones need open_clip_torch: pip install 'prompt-plugins[open_clip]'") from None
    arch, _, pretrained = spec.partition(":")
    try:
        model = open_clip.create_model(arch, pretrained=pretrained or None, cache_dir=None)
    except Exception as exc:
        raise CheckpointError(f"open_clip model {spec!r} could not be created from local files "
                              f"({type(exc).__name__}: {exc})") from None
    return model.eval()
