"""Adapter checkpoints: ``adapter_model.safetensors`` (prompt tensors only) + ``adapter_config.json``.

Writes are atomic: each file is written to a temporary file in the same directory, flushed
to disk and renamed over the old one, weights first and config last. The config records
the SHA-256 of the weights it belongs to, so a weights/config pair that does not belong
together (a process killed between the two renames) is refused at load time instead of
loading silently wrong prompts.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ._version import __version__
from .config import Config
from .errors import CheckpointError, ConfigError

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"
FORMAT_VERSION = 1
#: fingerprint keys that decide whether prompt tensors fit a backbone
SHAPE_KEYS = ("text_width", "text_layers", "context_length", "vision_width", "vision_layers", "embed_dim")
#: the text after the context slots, and the zero-shot template of ``disabled()``; the one place they are set
DEFAULT_TEMPLATE = "{}."
DEFAULT_ZERO_SHOT_TEMPLATE = "a photo of a {}."


def check_template(name: str, value: str) -> str:
    """A prompt template must hold one ``{}`` for the class name."""
    if "{}" not in value:
        raise ConfigError(f"{name} {value!r} has no '{{}}' for the class name")
    return value


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

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, without the keys that are None (as format 1 wrote them)."""
        return {k: v for k, v in super().to_dict().items() if v is not None}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def serialize_tensors(tensors: Mapping[str, Tensor], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save

    clean = {}
    for name, t in tensors.items():
        if not isinstance(t, Tensor):
            raise CheckpointError(f"state entry {name!r} is {type(t).__name__}, not a tensor")
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


def save_pretrained(adapter: Any, directory: str | os.PathLike) -> Path:
    """Save ``adapter`` (anything with ``adapter_config()`` and ``adapter_state_dict()``, such as
    ``PromptedCLIP`` or ``DualPromptWrapper``) into ``directory``. Returns the directory."""
    if not (hasattr(adapter, "adapter_config") and hasattr(adapter, "adapter_state_dict")):
        raise CheckpointError(
            f"{type(adapter).__name__} is not a prompt-plugins adapter (no adapter_config/adapter_state_dict)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = adapter.adapter_config()
    config = config if isinstance(config, AdapterConfig) else AdapterConfig.from_dict(config, where="adapter_config()")
    data = serialize_tensors(adapter.adapter_state_dict(), {"format": "pt", "method": config.method})
    config = config.replace(format_version=FORMAT_VERSION, weights_sha256=hashlib.sha256(data).hexdigest())
    text = json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(directory / WEIGHTS_NAME, data)
    atomic_write_bytes(directory / CONFIG_NAME, text.encode())
    return directory


def read_adapter(directory: str | os.PathLike) -> tuple[AdapterConfig, dict[str, Tensor]]:
    """Read and validate config + tensors, without building anything."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"adapter directory {str(directory)!r} does not exist")
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"{path.name} is missing from {str(directory)!r}; "
                                  f"an adapter directory holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
    version = config.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{config_path} has no integer format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has format_version {version}, newer than this prompt-plugins understands "
            f"({FORMAT_VERSION}); upgrade prompt-plugins to load it")
    known = set(AdapterConfig.field_names())
    unknown = sorted(set(config) - known)
    if unknown:
        warnings.warn(f"{config_path.name}: ignoring unknown keys {unknown} (written by a newer version?)",
                      stacklevel=2)
        config = {k: v for k, v in config.items() if k in known}
    if not isinstance(config.get("method"), str):
        raise ConfigError(f"{directory}: adapter_config.json has no 'method'")
    data = weights_path.read_bytes()
    expected = config.get("weights_sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(
            f"{weights_path.name} does not match the SHA-256 recorded in {config_path.name}: the files come "
            "from different saves (an interrupted save?) or the weights were modified")
    return AdapterConfig.from_dict(config, where=str(config_path)), deserialize_tensors(data, str(weights_path))


def check_backbone(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> None:
    """Refuse a checkpoint whose backbone shapes differ, naming both."""
    if not saved:
        return
    diffs = [f"{k}: checkpoint {saved[k]} vs model {current.get(k)}"
             for k in SHAPE_KEYS if k in saved and saved[k] != current.get(k)]
    if diffs:
        raise CheckpointError(
            f"checkpoint was saved for a different backbone ({saved.get('backend', '?')}) than this "
            f"{current.get('backend', '?')} model: " + "; ".join(diffs))


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
