"""Reading a user's training set for hard negatives: per-item labels, a ``class -> indices`` index, and the
image of an item (tuples, dicts or bare tensors). No JSON database, unlike the released code."""
from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ...errors import ConfigError


def as_label(value: Any, where: str) -> int:
    """An integer class label >= 0; a bool, a float (``int()`` would truncate 1.7 to 1) or a negative value is
    a ``ConfigError`` naming ``where`` it came from."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point() and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"{where}: label {value!r} ({type(value).__name__}) is not a class index (an int >= 0); "
                          "pass integer labels (e.g. tensor.long() of whole numbers)")
    return int(value)


def build_class_index(labels: Sequence[int] | Tensor, where: str = "labels") -> dict[int, list[int]]:
    """``class -> [dataset indices]`` from the per-item labels of a dataset."""
    index: dict[int, list[int]] = {}
    values = labels.tolist() if isinstance(labels, Tensor) else list(labels)
    for i, y in enumerate(values):
        index.setdefault(as_label(y, f"{where}[{i}]"), []).append(i)
    return index


def item_label(item: Any) -> int:
    """The label of a dataset item: ``item[1]`` of a tuple, ``item['label'|'labels'|'target']`` of a dict."""
    if isinstance(item, Mapping):
        for key in ("label", "labels", "target"):
            if key in item:
                return as_label(item[key], f"dataset item [{key!r}]")
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return as_label(item[1], "dataset item [1]")
    raise ConfigError("cannot read a label from dataset items: pass labels=[...] or class_index={...}")


def dataset_labels(dataset: Any) -> list[int]:
    """Per-item labels: ``dataset.targets`` / ``.labels`` / ``.label`` when present, else every item once."""
    for attr in ("targets", "labels", "label"):
        value = getattr(dataset, attr, None)
        if value is not None and not callable(value):
            values = value.tolist() if isinstance(value, Tensor) else value
            return [as_label(v, f"dataset.{attr}[{i}]") for i, v in enumerate(values)]
    return [item_label(dataset[i]) for i in range(len(dataset))]


def default_get_image(item: Any) -> Tensor:
    """The image of a dataset item: ``item[0]`` of a tuple, ``item['image'|'pixel_values']`` of a dict."""
    if isinstance(item, Tensor):
        return item
    if isinstance(item, Mapping):
        for key in ("image", "pixel_values", "img"):
            if key in item:
                return item[key]
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], Tensor):
        return item[0]
    raise ConfigError("cannot find the image tensor in a dataset item: pass get_image=callable(item) -> Tensor")
