"""Class selectors: class names or indices -> a LongTensor of indices, checked against the class list."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .errors import ClassNameError

ClassSelector = Sequence[int] | Sequence[str] | Tensor | None


def class_indices(classes: ClassSelector, classnames: Sequence[str] | None, n: int | None = None) -> Tensor | None:
    """``classes`` (names, indices or an index tensor; None: all) -> (K,) LongTensor of indices, or None.

    classnames: the class list (None when unknown: names are then refused); n: the number of classes,
    for the range check (default ``len(classnames)``; None with no class list: unchecked)."""
    if classes is None:
        return None
    n = len(classnames) if n is None and classnames is not None else n
    if isinstance(classes, Tensor):
        idx = classes.long().flatten().cpu()
    else:
        classes = list(classes)
        if classes and all(isinstance(c, str) for c in classes):
            if classnames is None:
                raise ClassNameError("classes given by name, but the class names of this model are unknown: "
                                     "pass classnames=[...] or select classes by index")
            lookup = {name: i for i, name in enumerate(classnames)}
            missing = [c for c in classes if c not in lookup]
            if missing:
                raise ClassNameError(f"unknown class names {missing}; known: {list(classnames[:10])}"
                                     f"{' ...' if len(classnames) > 10 else ''}")
            return torch.tensor([lookup[c] for c in classes], dtype=torch.long)
        idx = torch.tensor(classes, dtype=torch.long)
    if n is not None and idx.numel() and (idx.min() < 0 or idx.max() >= n):
        raise ClassNameError(f"class index out of range for {n} classes: {idx.tolist()[:10]}")
    return idx
