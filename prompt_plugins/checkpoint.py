"""Adapter checkpoints: ``adapter_model.safetensors`` (prompt tensors only) + ``adapter_config.json``.

Writes are atomic: each file is written to a temporary file in the same directory, flushed
to disk and renamed over the old one, weights first and config last, under an exclusive lock
on the directory (``files.directory_lock``; readers take it shared), so concurrent saves end
with one complete adapter. The config records the SHA-256 of the weights it belongs to, so a
weights/config pair that does not belong together (a process killed between the two renames)
is refused at load time instead of loading silently wrong prompts.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ._version import __version__
from .backends import BACKENDS
from .config import Config
from .errors import BackendMismatchWarning, CheckpointError, ConfigError
from .files import (check_writable_target, directory_lock, ensure_directory, safetensors_problem,
                    write_atomic)
from .tokenization import check_template

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"
FORMAT_VERSION = 1
#: fingerprint keys that decide whether prompt tensors fit a backbone
SHAPE_KEYS = ("text_width", "text_layers", "context_length", "vision_width", "vision_layers", "embed_dim")
#: an ``adapter_config.json`` larger than this is refused unread (a config with 100k class names is ~3 MiB)
MAX_CONFIG_BYTES = 64 * 2**20
#: the text after the context slots, and the zero-shot template of ``disabled()``; the one place they are set
DEFAULT_TEMPLATE = "{}."
DEFAULT_ZERO_SHOT_TEMPLATE = "a photo of a {}."
#: an imported adapter's fixed prompt words (k, Dt) as the trainer stored them (token embeddings, not text): read
#: back into words against the user's CLIP when it loads (``tokenization.words_of_embeddings``)
FIXED_WORDS_KEY = "template.fixed"

@dataclass
class AdapterConfig(Config):
    """``adapter_config.json`` (format 1). ``prompt``: the prompt module's section (``prompts.prompt_to_dict``);
    ``dpc`` / ``inner``: a DPC adapter's own section and its backbone adapter's config; ``imported_from``:
    what an importer read; ``run``: what ``prompt-plugins train`` trained it on (data set, split, base classes,
    shots, seed, recipe; ``runs/record.py``). ``format_version`` and ``weights_sha256`` are filled in by
    ``save_pretrained``."""

    method: str
    prompt: dict | None = None
    template: str = DEFAULT_TEMPLATE
    zero_shot_template: str = DEFAULT_ZERO_SHOT_TEMPLATE
    classnames: list[str] | None = None
    backbone: dict | None = None
    package_version: str = __version__
    dpc: dict | None = None
    inner: dict | None = None
    imported_from: dict | None = None
    run: dict | None = None
    format_version: int | None = None
    weights_sha256: str | None = None

    def check(self) -> None:
        check_template("template", self.template)
        check_template("zero_shot_template", self.zero_shot_template)
        for key, value in (self.backbone or {}).items():
            expected = str if key == "backend" else int if key in SHAPE_KEYS else None
            if expected is not None and (not isinstance(value, expected) or isinstance(value, bool)):
                raise ConfigError(f"backbone.{key}={value!r} ({type(value).__name__}) is not valid: expected "
                                  f"{expected.__name__}; fix or remove it (it describes the CLIP the adapter was "
                                  "saved for)")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, without the keys that are None (as format 1 wrote them)."""
        return {k: v for k, v in super().to_dict().items() if v is not None}


def serialize_tensors(tensors: Mapping[str, Tensor], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save

    clean = {}
    for name, t in tensors.items():
        if not isinstance(t, Tensor):
            raise CheckpointError(f"state entry {name!r} is {type(t).__name__}, not a tensor")
        if t.is_floating_point() and not bool(torch.isfinite(t.detach()).all()):
            raise CheckpointError(f"tensor {name!r} contains NaN or inf values (training diverged?): not saved, "
                                  "since the adapter could not be loaded; lower the learning rate or use fp32 prompts")
        clean[name] = t.detach().to("cpu").contiguous().clone()
    return save(clean, metadata=metadata)


def deserialize_tensors(data: bytes, source: str) -> dict[str, Tensor]:
    from safetensors.torch import load

    if not data:
        raise CheckpointError(f"{source} is empty (0 bytes): the save was interrupted or the file was truncated")
    try:
        return load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError / ValueError types
        raise CheckpointError(
            f"{source} is not a valid safetensors file ({type(exc).__name__}: {exc}); it may be truncated or corrupt"
        ) from None


class RawAdapter:
    """A config + tensors pair that ``save_pretrained`` can write (what an importer produces)."""

    def __init__(self, config: AdapterConfig, state: dict[str, Tensor]):
        self._config, self._state = config, state

    def adapter_config(self) -> AdapterConfig:
        return self._config

    def adapter_state_dict(self) -> dict[str, Tensor]:
        return self._state


def save_pretrained(adapter: Any, directory: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Save ``adapter`` (anything with ``adapter_config()`` and ``adapter_state_dict()``, such as
    ``PromptedCLIP`` or ``DualPromptWrapper``) into ``directory`` (created when missing). With
    ``overwrite=False`` a directory that already holds an adapter is refused. Returns the directory."""
    if not (hasattr(adapter, "adapter_config") and hasattr(adapter, "adapter_state_dict")):
        raise CheckpointError(
            f"{type(adapter).__name__} is not a prompt-plugins adapter (no adapter_config/adapter_state_dict)")
    if not isinstance(overwrite, bool):
        raise ConfigError(f"overwrite must be True or False, got {overwrite!r}")
    directory = as_path(directory, "directory")
    check_save_target(directory, overwrite)  # fails before anything is created; again below, under the lock
    config = adapter.adapter_config()
    config = config if isinstance(config, AdapterConfig) else AdapterConfig.from_dict(config, where="adapter_config()")
    data = serialize_tensors(adapter.adapter_state_dict(), {"format": "pt", "method": config.method})
    config = config.replace(format_version=FORMAT_VERSION, weights_sha256=hashlib.sha256(data).hexdigest())
    text = json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
    ensure_directory(directory, "adapter directory")
    with directory_lock(directory, shared=False):
        check_save_target(directory, overwrite)
        write_atomic(directory / WEIGHTS_NAME, data)
        write_atomic(directory / CONFIG_NAME, text.encode())
    return directory


def check_save_target(directory: Path, overwrite: bool, what: str = "adapter directory") -> None:
    """``directory`` (missing or a folder) can receive an adapter: no file is in the way of its two files, and
    with ``overwrite=False`` it holds no adapter yet. Nothing is created."""
    if directory.is_file():
        raise CheckpointError(f"{what} {str(directory)!r} is a file, not a directory: pass a folder path "
                              "(it is created when missing)")
    targets = (directory / WEIGHTS_NAME, directory / CONFIG_NAME)
    for path in targets:
        check_writable_target(path)
    if not overwrite and any(p.exists() for p in targets):
        raise CheckpointError(f"{what} {str(directory)!r} already holds an adapter: pass overwrite=True to replace "
                              "it (CLI: --overwrite), or save into another folder")


def as_path(value: Any, name: str) -> Path:
    """``value`` as a ``Path``; anything but a str or ``os.PathLike`` is a ``ConfigError`` naming ``name``."""
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, str) and not value:
        raise ConfigError(f"{name} must be a folder path (str or pathlib.Path), got {type(value).__name__} {value!r}")
    return Path(value)


def _read_config(config_path: Path) -> dict[str, Any]:
    size = config_path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{config_path} is {size:,} bytes, more than any adapter config "
                              f"({MAX_CONFIG_BYTES:,}): it is not an adapter_config.json; not read")
    try:
        config = json.loads(config_path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
    version = config.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{config_path} has no integer format_version (got {version!r})")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has format_version {version}, newer than this prompt-plugins understands "
            f"({FORMAT_VERSION}); upgrade prompt-plugins to load it")
    return config


def read_adapter(directory: str | os.PathLike) -> tuple[AdapterConfig, dict[str, Tensor]]:
    """Read and validate config + tensors, without building anything (under a shared directory lock, so a
    concurrent save is seen whole or not at all). The weights' header is checked before they are read."""
    directory = as_path(directory, "adapter directory")
    if directory.is_symlink() and not directory.exists():
        raise CheckpointError(f"adapter directory {str(directory)!r} is a symbolic link that loops or points nowhere")
    if directory.is_file():
        raise CheckpointError(f"{str(directory)!r} is a file; pass the adapter directory that holds "
                              f"{CONFIG_NAME} and {WEIGHTS_NAME} ({str(directory.parent)!r}?)")
    if not directory.is_dir():
        raise CheckpointError(f"adapter directory {str(directory)!r} does not exist")
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    with directory_lock(directory, shared=True):
        for path in (config_path, weights_path):
            if not path.is_file():
                what = "is not a file" if path.exists() else "is missing"
                raise CheckpointError(f"{path.name} {what} in {str(directory)!r}; "
                                      f"an adapter directory holds {CONFIG_NAME} and {WEIGHTS_NAME}")
        config = _read_config(config_path)
        if weights_path.stat().st_size == 0:
            raise CheckpointError(f"{weights_path} is empty (0 bytes): the save was interrupted or the file was "
                                  "truncated")
        problem = safetensors_problem(weights_path)
        if problem is not None:
            raise CheckpointError(f"{weights_path} is not a valid safetensors file ({problem}); it may be truncated "
                                  "or corrupt; not read further")
        data = weights_path.read_bytes()
    known = set(AdapterConfig.field_names())
    unknown = sorted(set(config) - known)
    if unknown:
        warnings.warn(f"{config_path.name}: ignoring unknown keys {unknown} (written by a newer version?)",
                      stacklevel=2)
        config = {k: v for k, v in config.items() if k in known}
    if not isinstance(config.get("method"), str):
        raise ConfigError(f"{directory}: adapter_config.json has no 'method' string (got {config.get('method')!r}); "
                          "it names the method that saved the adapter, e.g. \"coop\"")
    expected = config.get("weights_sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(
            f"{weights_path.name} does not match the SHA-256 recorded in {config_path.name}: the files come "
            "from different saves (an interrupted save?) or the weights were modified")
    return AdapterConfig.from_dict(config, where=str(config_path)), deserialize_tensors(data, str(weights_path))


def check_backbone(saved: Mapping[str, Any] | None, current: Mapping[str, Any], *,
                   allow_other_backend: bool = False) -> None:
    """Refuse a checkpoint whose backbone shapes differ, naming both; warn (``BackendMismatchWarning``) when
    it was saved on another CLIP library, unless ``allow_other_backend``."""
    if not saved:
        return
    diffs = [f"{k}: checkpoint {saved[k]} vs model {current.get(k)}"
             for k in SHAPE_KEYS if k in saved and saved[k] != current.get(k)]
    if diffs:
        raise CheckpointError(
            f"checkpoint was saved for a different backbone ({saved.get('backend', '?')}) than this "
            f"{current.get('backend', '?')} model: " + "; ".join(diffs))
    theirs, ours = saved.get("backend"), current.get("backend")
    known = {backend.name for backend in BACKENDS}  # an importer's free-text "backend" is not a library name
    if theirs in known and ours and theirs != ours and not allow_other_backend:
        warnings.warn(
            f"this adapter was saved on a {theirs!r} CLIP and is loaded into a {ours!r} model: the shapes match, "
            "but prompts only carry over when the weights are the same CLIP converted between libraries. If they "
            "are, pass allow_other_backend=True to from_pretrained; otherwise load it into its own backbone",
            BackendMismatchWarning, stacklevel=3)


def load_into(module: nn.Module, state: Mapping[str, Tensor], prefix: str = "") -> None:
    """Copy ``state`` (keys under ``prefix``) into ``module``'s state, strictly: missing,
    unexpected, wrongly shaped or non-finite tensors raise ``CheckpointError`` naming them."""
    own = module.state_dict()
    given = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint does not fit {type(module).__name__}: missing keys {[prefix + k for k in missing]}, "
            f"unexpected keys {[prefix + k for k in unexpected]}")
    for k, v in given.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"tensor {prefix + k!r} has shape {tuple(v.shape)} in the checkpoint but {tuple(own[k].shape)} "
                "in the model (different backbone width or prompt length?)")
        if not v.is_floating_point() and own[k].is_floating_point():
            raise CheckpointError(f"tensor {prefix + k!r} has dtype {v.dtype}, expected a floating-point tensor")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"tensor {prefix + k!r} contains NaN or inf values")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in given.items()}, strict=True)
