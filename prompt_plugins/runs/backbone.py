"""``--backbone``: a CLIP that is already on disk. Nothing is ever downloaded.

  PATH.pt | PATH.safetensors   an OpenAI CLIP release file, an OpenAI CLIP state dict, or the backbone of a
                               ViFi-CLIP / Text4Vis / GA2-CLIP fine-tuning checkpoint (``importers/backbone.py``;
                               ViFi files lack the token embedding: ``base`` names the CLIP they started from)
  hf:NAME_OR_DIR               transformers ``CLIPModel`` (local files only)
  open_clip:ARCH[:PRETRAINED]  open_clip model; PRETRAINED a local file or a tag already in the local cache
  HF_DIR                       a folder with config.json (transformers)

Checkpoints are read with the package's one safe reader (no code from the file runs).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError, UnsafeCheckpointError


def load_backbone(spec: str, base: str | None = None) -> nn.Module:
    """The CLIP model named by ``spec`` in eval mode on CPU (``base``: the OpenAI CLIP a ViFi-CLIP checkpoint
    was fine-tuned from, for the tensors such files do not save)."""
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
    return build_openai(backbone_state_dict(path, base), path)


def check_backbone_spec(spec: str, base: str | None = None) -> None:
    """The checks of ``load_backbone`` that need no model (run before any work)."""
    if spec.startswith(("hf:", "open_clip:")):
        return
    path = Path(spec)
    if not path.exists():
        raise ConfigError(f"--backbone {spec!r} is not a file on disk; pass an OpenAI CLIP checkpoint path, "
                          "hf:NAME (downloaded already) or open_clip:ARCH[:PRETRAINED]")
    if path.is_file():
        from ..files import torch_file_kind

        torch_file_kind(path)  # a bogus file fails here, before the data set is read
    if base is not None and not Path(base).is_file():
        raise ConfigError(f"--backbone-base {base!r} is not a file on disk; pass the OpenAI CLIP checkpoint the "
                          "fine-tuned backbone started from (e.g. ViT-B-16.pt)")


def backbone_state_dict(path: Path, base: str | None = None) -> dict[str, Tensor]:
    """A plain OpenAI CLIP state dict from ``path`` (a release file, a state dict or a fine-tuning checkpoint)."""
    from ..files import torch_file_kind
    from ..importers.backbone import clip_state_dict, fill_missing
    from ..importers.reader import read_checkpoint

    torch_file_kind(path)  # a bogus file is refused from its first bytes, before anything reads it whole
    try:
        obj = read_checkpoint(path)
    except UnsafeCheckpointError:
        raise
    except CheckpointError:
        obj = None  # an OpenAI release file is a TorchScript archive: read through clip below
    if obj is None:
        return _openai_release(path).state_dict()
    state, report = clip_state_dict(obj, str(path))
    if report["missing"]:
        if base is None:
            raise ConfigError(f"--backbone {str(path)!r} lacks {report['missing']} (ViFi-CLIP checkpoints do not save "
                              "the token embedding): pass --backbone-base CLIP.pt, the OpenAI CLIP it was fine-tuned "
                              "from")
        fill_missing(state, report, backbone_state_dict(Path(base)), str(base))
    return state


def _clip_module() -> Any:
    from ..backends.openai_clip import import_clip

    try:
        clip_model = import_clip().model
    except ImportError:
        raise ConfigError("an OpenAI CLIP checkpoint needs the clip package: pip install 'prompt-plugins[openai]'"
                          ) from None
    return clip_model


def build_openai(state: dict[str, Tensor], path: Path) -> nn.Module:
    clip_model = _clip_module()
    convert = clip_model.convert_weights
    clip_model.convert_weights = lambda model: None  # build_model casts to fp16 first: keep fp32 weights exact
    try:
        return clip_model.build_model(dict(state)).float().eval()
    except ConfigError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path} holds CLIP-like tensors but not an OpenAI CLIP ({type(exc).__name__}: "
                              f"{exc})") from None
    finally:
        clip_model.convert_weights = convert


def _openai_release(path: Path) -> nn.Module:
    _clip_module()
    from ..backends.openai_clip import import_clip

    clip = import_clip()
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
    with offline():
        try:
            return CLIPModel.from_pretrained(name, local_files_only=True).eval()
        except Exception as exc:
            raise CheckpointError(f"transformers CLIPModel {name!r} is not on disk ({type(exc).__name__}); "
                                  "download it first or pass a local folder") from None


@contextmanager
def offline() -> Iterator[None]:
    """Hugging Face Hub calls inside the block never touch the network."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    patched = None
    try:
        import huggingface_hub.constants as constants

        patched = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
    except ImportError:
        constants = None
    try:
        yield
    finally:
        if constants is not None:
            constants.HF_HUB_OFFLINE = patched
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


def cached_open_clip_file(cfg: dict) -> str | None:
    """The local file open_clip would use for a pretrained config, or None when it would need a download."""
    if cfg.get("file"):
        return cfg["file"] if Path(cfg["file"]).is_file() else None
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo, filename = os.path.split(hub)  # as open_clip reads it: 'org/model/' -> default file names
            names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            if filename.endswith((".bin", ".pth")):
                names.insert(0, filename[:-4] + ".safetensors")
            for name in names:
                found = try_to_load_from_cache(repo, name)
                if isinstance(found, str):
                    return found
    url = cfg.get("url", "")
    if url:
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if local.is_file():
            return str(local)
    return None


def _open_clip(spec: str) -> nn.Module:
    try:
        import open_clip
    except ImportError:
        raise ConfigError("open_clip: backbones need open_clip_torch: pip install 'prompt-plugins[open_clip]'") from None
    arch, _, pretrained = spec.partition(":")
    if pretrained and not Path(pretrained).is_file():
        cfg = open_clip.get_pretrained_cfg(arch, pretrained)
        if not cfg:
            raise ConfigError(f"--backbone open_clip:{spec}: {pretrained!r} is neither a file nor a pretrained tag of "
                              f"{arch!r} (tags: {open_clip.list_pretrained_tags_by_model(arch)[:8]})")
        if cached_open_clip_file(cfg) is None:
            raise ConfigError(f"--backbone open_clip:{spec}: the weights of tag {pretrained!r} are not in the local "
                              "cache and prompt-plugins never downloads; fetch them once with open_clip on a machine "
                              f"with network access, or pass the file: open_clip:{arch}:/path/to/weights")
    with offline():
        try:
            model = open_clip.create_model(arch, pretrained=pretrained or None)
        except Exception as exc:
            raise CheckpointError(f"open_clip model {spec!r} could not be created from local files "
                                  f"({type(exc).__name__}: {exc})") from None
    return model.eval()
