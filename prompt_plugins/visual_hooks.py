"""Forward pre-hooks that put visual prompt tokens into the user's own visual tower.

Layer 0: tokens are appended to the input of the module before the blocks (``ln_pre``),
after the positional embedding (MaPLe's placement). Blocks 1..: the appended tokens are
replaced by that layer's deep prompt. Hooks are inert outside ``active(...)``, so the
user's own ``encode_image`` calls are unaffected while attached, and ``remove()``
detaches every one of them.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Iterator

from torch import Tensor

from .backends.base import Backend
from .ops import append_prompt_tokens, replace_prompt_tokens
from .prompts.base import Prompts


class VisualPromptHooks:
    #: the ops the hooks call; benchmarks swap in the ``*_reference`` formulations to compare
    append_op = staticmethod(append_prompt_tokens)
    replace_op = staticmethod(replace_prompt_tokens)

    def __init__(self, backend: Backend):
        self.backend = backend
        self.layout = backend.vision_layout
        self.prompts: Prompts | None = None
        entry = backend.vision_entry()
        self.handles = [entry.register_forward_pre_hook(self._entry_hook)]
        for i, block in enumerate(backend.vision_blocks()[1:], start=1):
            self.handles.append(block.register_forward_pre_hook(partial(self._block_hook, i), with_kwargs=True))

    @contextmanager
    def active(self, prompts: Prompts | None) -> Iterator[None]:
        previous, self.prompts = self.prompts, prompts
        try:
            yield
        finally:
            self.prompts = previous

    def _entry_hook(self, module, args: tuple):
        p = self.prompts
        if p is None or p.visual is None:
            return None
        x: Tensor = args[0]
        # ln_pre sees NLD in every supported library (the permute to LND comes after it)
        return (self.append_op(x, p.visual, p.temporal, layout="NLD"), *args[1:])

    def _block_hook(self, i: int, module, args: tuple, kwargs: dict):
        p = self.prompts
        if p is None or p.visual_deep is None or i > p.visual_deep.shape[0]:
            return None
        x, rebuild = Backend.block_hidden(args, kwargs)
        return rebuild(self.replace_op(x, p.visual_deep[i - 1], layout=self.layout))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
