"""``RouteView``: a ``PromptedCLIP`` seen through one route of a ``DualPromptWrapper``.

A loss written for a ``PromptedCLIP`` (cross-entropy over ``model(images, classes)``, PromptSRC's self-regulation,
KgCoOp's knowledge-guided term, PromptKD's distillation) calls ``encode_text``, ``encode_image``, ``logits``,
``disabled()`` and the model itself. Through the view, the first two and the call use the route's prompts (the
parallel prompt for "base"); everything else is the wrapped ``PromptedCLIP``'s own (``disabled()`` is still the
frozen zero-shot CLIP), so the backbone's own loss can train the parallel prompt beside DPC's objective.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from .dual import Route


class RouteView:
    """``wrapper.route_view("base")``: the target ``PromptedCLIP`` with every prompt taken from ``route``."""

    def __init__(self, wrapper: Any, route: Route):
        self._wrapper, self._route = wrapper, route

    def encode_text(self, classes: Any = None, *, normalize: bool = True, **_: Any) -> Tensor:
        return self._wrapper.encode_text(classes, route=self._route, normalize=normalize)

    def encode_image(self, images: Tensor, *, normalize: bool = True, **_: Any) -> Tensor:
        return self._wrapper.encode_image(images, route=self._route, normalize=normalize)

    def __call__(self, images: Tensor, classes: Any = None) -> Tensor:
        return self._wrapper(images, classes=classes, route=self._route)

    forward = __call__

    def __getattr__(self, name: str) -> Any:  # everything else: the wrapped PromptedCLIP's
        return getattr(self._wrapper.target, name)

    def __repr__(self) -> str:
        return f"RouteView({self._route!r} of {type(self._wrapper).__name__})"
