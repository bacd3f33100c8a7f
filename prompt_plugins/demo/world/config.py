"""``WorldConfig``: every knob of the world, the tiny CLIP and its pretraining, hashable into a cache key."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ...errors import ConfigError

#: fields that change the pretrained checkpoint (the cache key); the rest only affect downstream data
PRETRAIN_FIELDS = ("n_colours", "n_source_colours", "n_shapes", "image_size", "embed_dim", "width", "layers", "patch_size",
                   "context_length", "pretrain_steps", "pretrain_batch", "pretrain_lr", "seed",
                   "size_range", "template_share")


@dataclass(frozen=True)
class WorldConfig:
    """Procedural world + tiny CLIP + downstream split.

    Classes are ``n_colours x n_shapes`` names "<colour> <shape>", colour-major, so the first
    half of the classes (base) uses the first half of the colours and the second half (new)
    the other colours: new classes use attribute values that base tuning never sees.
    """

    n_colours: int = 8
    n_source_colours: int = 2
    n_shapes: int = 8
    image_size: int = 32
    frames: int = 4
    # tiny clip.model.CLIP
    embed_dim: int = 128
    width: int = 128
    layers: int = 4
    patch_size: int = 8
    context_length: int = 32
    # contrastive pretraining (images, captions covering every class)
    pretrain_steps: int = 1200
    pretrain_batch: int = 256
    pretrain_lr: float = 2e-3
    size_range: tuple[float, float] = (0.3, 0.75)
    template_share: float = 0.9
    seed: int = 0
    # downstream split and shift (downstream images only)
    shots: int = 16
    n_test: int = 20
    shift_scale: float = 1.0
    shift_stripes: float = 0.2
    shift_noise: float = 0.0
    #: added to the background brightness (pretraining: dark grey 0.05-0.3)
    shift_background: float = 0.0
    # CoOp context tokens of the demo's prompts
    n_ctx: int = 16

    def __post_init__(self) -> None:
        for name in ("n_colours", "n_shapes"):
            value = getattr(self, name)
            if not 2 <= value <= 8 or value % 2 and name == "n_colours":
                raise ConfigError(f"{name}={value}: must be in [2, 8] (n_colours even, halves make base/new)")
        if not 0 <= self.n_source_colours <= 10 - self.n_colours:
            raise ConfigError(f"n_source_colours={self.n_source_colours}: must be in [0, {10 - self.n_colours}] "
                              "(10 colours in all)")
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        for name in ("frames", "pretrain_steps", "pretrain_batch", "shots", "n_test", "layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    def key(self) -> str:
        """16 hex digits identifying the pretrained checkpoint."""
        data = {k: getattr(self, k) for k in PRETRAIN_FIELDS}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> "WorldConfig":
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown world option(s) {unknown}; known: {sorted(known)}")
        return replace(self, **changes)


PRESETS: dict[str, WorldConfig] = {
    "default": WorldConfig(),
    # seconds, for tests: 4 colours x 4 shapes, 2-layer width-32 CLIP, 20 pretraining steps
    "tiny": WorldConfig(n_colours=4, n_shapes=4, frames=2, embed_dim=32, width=64, layers=1, context_length=16,
                        pretrain_steps=20, pretrain_batch=32, shots=2, n_test=3, n_ctx=4),
}


def preset(name: str) -> WorldConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown world preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]
