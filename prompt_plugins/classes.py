"""Class selectors: class names, indices or a boolean mask -> a LongTensor of indices, checked against the
class list. A selector is ordered and says each class once; anything that would select silently other classes
(float indices, a single string read letter by letter, an unordered set) is refused."""
from __future__ import annotations

import difflib
from collections.abc import Set
from typing import Any, Sequence

import torch
from torch import Tensor

from .errors import ClassNameError
from .tokenization import normalize_classname

ClassSelector = Sequence[int] | Sequence[str] | Tensor | None


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name once both are normalised as the duplicate check
    normalises them (``normalize_classname``: Unicode form, case, spaces); else ''."""
    folded = {normalize_classname(k): k for k in known}
    close = difflib.get_close_matches(normalize_classname(name), list(folded), n=1, cutoff=0.75)
    return f" (did you mean {folded[close[0]]!r}?)" if close else ""


def _mask_to_indices(mask: Tensor, n: int | None) -> Tensor:
    if mask.dim() != 1 or (n is not None and mask.numel() != n):
        raise ClassNameError(f"classes given as a boolean mask of shape {tuple(mask.shape)}: a mask needs one "
                             f"entry per class, shape ({n if n is not None else 'C'},)")
    return torch.nonzero(mask.cpu()).flatten()


def _tensor_indices(classes: Tensor, n: int | None) -> Tensor:
    if classes.dtype == torch.bool:
        return _mask_to_indices(classes, n)
    if classes.is_floating_point() or classes.is_complex():
        raise ClassNameError(f"classes must be integer indices, got a {classes.dtype} tensor "
                             f"{classes.flatten().tolist()[:10]}; float values are not class indices "
                             "(use .long() on integral values, or pass class names)")
    if classes.dim() != 1:
        raise ClassNameError(f"classes must be a 1-D tensor of indices, got shape {tuple(classes.shape)}; "
                             "use classes.flatten() (or [i] for one class)")
    return classes.long().cpu()


def _list_indices(classes: Any, classnames: Sequence[str] | None, n: int | None) -> Tensor:
    if isinstance(classes, (str, int)) or isinstance(classes, Set):
        what = "a set (its order is arbitrary)" if isinstance(classes, Set) else f"a single {type(classes).__name__}"
        fix = "sorted(classes)" if isinstance(classes, Set) else f"[{classes!r}]"
        raise ClassNameError(f"classes={classes!r} is {what}: pass an ordered list, e.g. {fix}")
    if hasattr(classes, "__array__") and not isinstance(classes, (list, tuple)):
        return _tensor_indices(torch.as_tensor(classes), n)
    items = list(classes)
    if items and all(isinstance(c, str) for c in items):
        if classnames is None:
            raise ClassNameError("classes given by name, but the class names of this model are unknown: "
                                 "pass classnames=[...] or select classes by index")
        lookup = {name: i for i, name in enumerate(classnames)}
        missing = [c for c in items if c not in lookup]
        if missing:
            raise ClassNameError(f"unknown class names {missing}{did_you_mean(missing[0], classnames)}; known: "
                                 f"{list(classnames[:10])}{' ...' if len(classnames) > 10 else ''}")
        return torch.tensor([lookup[c] for c in items], dtype=torch.long)
    if items and all(isinstance(c, bool) for c in items):
        return _mask_to_indices(torch.tensor(items), n)
    bad = [c for c in items if isinstance(c, bool) or not isinstance(c, int) and not _integer_scalar(c)]
    if bad:
        raise ClassNameError(f"classes must be all class names or all integer indices, got {bad[0]!r} "
                             f"({type(bad[0]).__name__}) in {items[:10]}")
    return torch.tensor([int(c) for c in items], dtype=torch.long)


def _integer_scalar(value: Any) -> bool:
    """A numpy integer or a 0-d integer tensor inside a list."""
    dtype = getattr(value, "dtype", None)
    return dtype is not None and getattr(value, "ndim", 1) == 0 and "int" in str(dtype)


def class_indices(classes: ClassSelector, classnames: Sequence[str] | None, n: int | None = None) -> Tensor | None:
    """``classes`` (names, indices, an index tensor or a boolean mask; None: all) -> (K,) LongTensor, or None.

    classnames: the class list (None when unknown: names are then refused); n: the number of classes,
    for the range check (default ``len(classnames)``; None with no class list: unchecked)."""
    if classes is None:
        return None
    n = len(classnames) if n is None and classnames is not None else n
    idx = _tensor_indices(classes, n) if isinstance(classes, Tensor) else _list_indices(classes, classnames, n)
    if idx.numel() == 0:
        raise ClassNameError("classes selects no class (an empty list or an all-False mask); pass at least one, "
                             "or classes=None for all")
    if n is not None and (idx.min() < 0 or idx.max() >= n):
        raise ClassNameError(f"class index out of range for {n} classes: {idx.tolist()[:10]} "
                             f"(valid: 0..{n - 1})")
    values = idx.tolist()
    if len(set(values)) != len(values):
        dup = sorted({i for i in values if values.count(i) > 1})
        raise ClassNameError(f"classes selects class(es) {dup} more than once: a repeated column changes the "
                             "softmax over classes; pass each class once")
    return idx
