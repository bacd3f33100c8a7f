"""The ``run`` section an adapter written by ``train`` carries in ``adapter_config.json``: which data set and
split it was trained on (base classes, shots, seed), with which method, recipe and backbone. ``eval`` reads it
and refuses a data set that gives other classes; ``benchmark`` groups results by it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..errors import ConfigError


@dataclass
class RunRecord(Config):
    """dataset / protocol / classnames / base_classes / new_classes / shots / seed / train_items / source:
    ``Task.record()``; root and splits: the folders read; method, recipe (the effective ``Recipe`` as a
    dict), backbone (the ``--backbone`` spec as typed); stage1: DPC's ``--from`` adapter; hard_prompt / anchors:
    GA2's files; teacher / teacher_backbone: PromptKD's ``--teacher`` and its CLIP; frames per video; epochs trained.
    backbone_path / backbone_fingerprint: the spec resolved and the weights' fingerprint (``identity.py``),
    classnames_file / splits_path: ``--classnames`` / ``--splits`` resolved, so that ``eval`` works from any folder
    (None in records written before them)."""

    dataset: str
    protocol: str
    shots: int
    seed: int
    classnames: list[str]
    base_classes: list[str]
    new_classes: list[str]
    method: str
    recipe: dict
    backbone: str
    root: str
    train_items: int = 0
    source: dict | None = None
    splits: str | None = None
    frames: int | None = None
    stage1: str | None = None
    hard_prompt: str | None = None
    anchors: str | None = None
    teacher: str | None = None
    teacher_backbone: str | None = None
    epochs: int = 0
    backbone_path: str | None = None
    backbone_fingerprint: str | None = None
    classnames_file: str | None = None
    splits_path: str | None = None

    @property
    def recipe_name(self) -> str:
        return str(self.recipe.get("name", "?"))


#: fields added after the first records: left out of a training state's plan, so older states still resume
#: (the run folder's ``run.json`` checks the backbone of a resumed seed)
LATER_FIELDS = ("backbone_path", "backbone_fingerprint", "classnames_file", "splits_path")


def read_record(config: Any, where: str) -> RunRecord | None:
    """The ``RunRecord`` of an ``AdapterConfig`` (None when the adapter was not written by ``train``)."""
    if config.run is None:
        return None
    return RunRecord.from_dict(config.run, where=f"{where} 'run'")


def compare_split(record: RunRecord, task_record: dict[str, Any], where: str) -> None:
    """``ConfigError`` when the data set read now gives other classes than the adapter was trained on."""
    for key in ("dataset", "classnames", "base_classes", "new_classes"):
        ours, theirs = task_record[key], getattr(record, key)
        if ours != theirs:
            if isinstance(ours, list):
                diff = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
                detail = (f"{len(theirs)} recorded vs {len(ours)} now; first difference at position {diff}: "
                          f"{theirs[diff] if diff < len(theirs) else '(none)'!r} vs "
                          f"{ours[diff] if diff < len(ours) else '(none)'!r}")
            else:
                detail = f"{theirs!r} recorded vs {ours!r} now"
            raise ConfigError(f"{where} was trained on other {key.replace('_', ' ')} than the data set read now "
                              f"({detail}); evaluate it on the data it was trained on (check --dataset/--root/"
                              "--splits), or train again")
