"""Attribute vocabularies, compositional class names, captions and the base/new split."""
from __future__ import annotations

from dataclasses import dataclass

from .config import WorldConfig

#: name -> RGB in [0, 1]
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.1, 0.1), "green": (0.1, 0.75, 0.15), "blue": (0.15, 0.25, 0.95), "yellow": (0.95, 0.9, 0.1),
    "purple": (0.6, 0.15, 0.8), "orange": (1.0, 0.55, 0.0), "cyan": (0.1, 0.85, 0.9), "pink": (1.0, 0.5, 0.75),
    # source colours: pretrained, but in neither base nor new classes (GA2's hard prompt and anchor clips)
    "white": (0.93, 0.93, 0.93), "brown": (0.55, 0.33, 0.12),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "ring", "cross", "bar", "half circle")
#: video motions: (dx, dy, growth, spin) per frame, in units of the half image
MOTIONS: dict[str, tuple[float, float, float, float]] = {
    "moving left": (-0.15, 0.0, 0.0, 0.0), "moving right": (0.15, 0.0, 0.0, 0.0),
    "moving up": (0.0, 0.15, 0.0, 0.0), "moving down": (0.0, -0.15, 0.0, 0.0),
    "growing": (0.0, 0.0, 0.2, 0.0), "shrinking": (0.0, 0.0, -0.15, 0.0),
    "rotating": (0.0, 0.0, 0.0, 0.6), "still": (0.0, 0.0, 0.0, 0.0),
}
#: pretraining caption templates; the first takes ``template_share`` of captions
TEMPLATES: tuple[str, ...] = ("a photo of a {}.", "a picture of a {}.", "a {}.", "a drawing of a {}.")


@dataclass(frozen=True)
class World:
    """Class list of a config: class ``i`` is colour ``i // n_shapes``, shape ``i % n_shapes``.

    ``classnames`` are the base-to-new classes (the first ``n_colours`` colours). The next
    ``n_source_colours`` colours make the *source* classes: pretrained on, but neither base nor new (the
    label set GA2's hard prompt is tuned on and its unlabelled anchor clips come from). Their indices follow
    the target classes, so one index space covers every pretraining class."""

    config: WorldConfig

    @property
    def colours(self) -> list[str]:
        return list(COLOURS)[: self.config.n_colours]

    @property
    def shapes(self) -> list[str]:
        return list(SHAPES[: self.config.n_shapes])

    @property
    def classnames(self) -> list[str]:
        return [f"{c} {s}" for c in self.colours for s in self.shapes]

    @property
    def source_colours(self) -> list[str]:
        n = self.config.n_colours
        return list(COLOURS)[n: n + self.config.n_source_colours]

    @property
    def source(self) -> list[int]:
        """Indices of the source classes (after the base and new classes)."""
        return list(range(self.n_classes, self.n_classes + len(self.source_colours) * self.config.n_shapes))

    @property
    def pretrain_classnames(self) -> list[str]:
        """Every class the tiny CLIP is pretrained on: base, new and source, in index order."""
        return [f"{c} {s}" for c in self.colours + self.source_colours for s in self.shapes]

    @property
    def n_classes(self) -> int:
        return self.config.n_colours * self.config.n_shapes

    @property
    def base(self) -> list[int]:
        """First half of the classes: the first half of the colours, every shape."""
        return list(range(self.n_classes // 2))

    @property
    def new(self) -> list[int]:
        return list(range(self.n_classes // 2, self.n_classes))

    def attributes(self, label: int) -> tuple[int, int]:
        """class index -> (colour index, shape index)."""
        return divmod(label, self.config.n_shapes)

    def video_name(self, label: int, motion: str) -> str:
        """Caption-style name of a video, e.g. "red circle moving left"."""
        return f"{self.classnames[label]} {motion}"
