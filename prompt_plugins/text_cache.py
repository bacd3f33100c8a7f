"""The class-feature cache of ``PromptedCLIP.encode_text_multi``: a small LRU of features that cannot need
gradients, keyed on everything they depend on (that method's docstring lists it)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor


class TextFeatureCache:
    """Entries ``key -> (features, refs)``; ``refs`` keeps the keyed tensors alive, so their ids cannot be recycled."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple, tuple[Tensor, list]] = OrderedDict()

    @staticmethod
    def key(*, size: int, enabled: bool, tokens: Any, idx: Tensor | None, given: bool, tensors: list[Tensor],
            backend: Any) -> tuple[tuple | None, list]:
        """The key of one request and the objects its entry must keep alive; (None, []) when ``size`` <= 0."""
        if size <= 0:
            return None, []
        device = backend.device
        amp = torch.is_autocast_enabled(device.type)
        state = tuple((id(t), t.data_ptr(), t._version, tuple(t.shape)) for t in tensors)
        key = (enabled, id(tokens), None if idx is None else tuple(idx.tolist()), "given" if given else "module",
               state, amp, torch.get_autocast_dtype(device.type) if amp else None, backend.dtype, str(device))
        return key, [tokens, *tensors]

    def get(self, key: tuple | None) -> Tensor | None:
        if key is None or key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key][0]

    def put(self, key: tuple, features: Tensor, refs: list, size: int) -> None:
        self._entries[key] = (features.detach(), refs)
        while len(self._entries) > size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
