"""What identifies a backbone in the records ``train`` writes and ``eval`` / ``benchmark`` read: the ``--backbone``
spec as typed, the path it resolved to, and a fingerprint of the weights it loaded (so that the same name in
another folder, or a file replaced under the same path, is never taken for the CLIP an adapter was tuned on)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

#: fingerprint prefix: a SHA-256 over the state dict's names, dtypes, shapes and bytes (first 16 hex digits)
FINGERPRINT_KIND = "sha256:"


def resolved_spec(spec: str) -> str:
    """``--backbone`` as an absolute spec (a path made absolute; ``hf:DIR`` and ``open_clip:ARCH:FILE`` with
    their folder / file made absolute; a name that is not on disk is kept as typed)."""
    if spec.startswith("hf:"):
        rest = Path(spec[3:])
        return f"hf:{rest.resolve()}" if rest.exists() else spec
    if spec.startswith("open_clip:"):
        arch, _, pretrained = spec[len("open_clip:"):].partition(":")
        return f"open_clip:{arch}:{Path(pretrained).resolve()}" if pretrained and Path(pretrained).is_file() else spec
    return str(Path(spec).resolve())


def spec_on_disk(spec: str) -> bool:
    """Whether ``spec`` names something ``load_backbone`` can find here (a file or folder; hub names count)."""
    if spec.startswith("hf:"):
        rest = spec[3:]
        return Path(rest).exists() or not (rest.startswith((".", "/", "~")) or Path(rest).suffix)
    if spec.startswith("open_clip:"):
        return True
    return Path(spec).exists()


def weights_fingerprint(model: nn.Module) -> str:
    """``sha256:<16 hex>`` over every tensor of ``model.state_dict()`` (name, dtype, shape, bytes) in name order:
    the same weights give the same fingerprint whichever file format or folder they were read from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)};".encode())
        digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return FINGERPRINT_KIND + digest.hexdigest()[:16]


@dataclass(frozen=True)
class BackboneId:
    """spec: ``--backbone`` as typed; path: ``resolved_spec(spec)``; fingerprint: ``weights_fingerprint``."""

    spec: str
    path: str
    fingerprint: str

    def to_dict(self) -> dict[str, str]:
        return {"spec": self.spec, "path": self.path, "fingerprint": self.fingerprint}

    def describe(self) -> str:
        return f"{self.path} ({self.fingerprint})"


def identify(spec: str, model: nn.Module) -> BackboneId:
    return BackboneId(spec, resolved_spec(spec), weights_fingerprint(model))


def recorded_backbone(record: Any, where: str) -> tuple[str, str]:
    """The backbone an adapter's ``run`` record names, found on disk: (spec, how it was found). The resolved path
    comes first (``eval`` from any folder); a record without one (written before fingerprints) gives the spec as
    typed, relative to this folder. Neither on disk: a ``ConfigError`` that names the record, not a flag."""
    path = getattr(record, "backbone_path", None)
    if path and spec_on_disk(path):
        return path, "recorded path"
    if spec_on_disk(record.backbone):
        return record.backbone, "recorded name"
    recorded = f" (resolved then to {path!r})" if path else ""
    raise ConfigError(f"{where} was trained on the backbone {record.backbone!r}{recorded}, which is not on disk here; "
                      "pass --backbone with the CLIP it was trained on")


def describe_recorded(record: Any) -> str:
    path = getattr(record, "backbone_path", None) or record.backbone
    return f"{path} ({record.backbone_fingerprint})"
