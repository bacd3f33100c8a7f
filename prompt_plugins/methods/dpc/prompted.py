"""DPC on a prompt-plugins ``PromptedCLIP``: every tensor of its prompt module is dualised, and text and
image features are computed per route (image features per route only when the prompts have a visual part)."""
from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ...checkpoint import AdapterConfig
from ...errors import ConfigError
from ...model import PromptedCLIP
from ...prompts.base import Prompts
from .dual import Route
from .route_view import RouteView
from .wrapper import DualPromptWrapper


class PromptedDualWrapper(DualPromptWrapper):
    """``DualPromptWrapper`` over a ``PromptedCLIP`` (what ``DualPromptWrapper(prompted, ...)`` returns)."""

    target: PromptedCLIP

    @classmethod
    def accepts(cls, target: Any) -> bool:
        return isinstance(target, PromptedCLIP)

    def prompt_holder(self, target: nn.Module) -> nn.Module:
        return target.prompt

    def default_prompt_names(self, target: nn.Module) -> list[str]:
        return target.prompt.prompt_tensor_names()

    def no_prompt_reason(self) -> str:
        return "its prompt module has no parameters"

    @property
    def classnames(self) -> list[str]:
        return self.target.classnames

    def _set_classnames(self, classnames: Sequence[str] | None) -> None:
        if classnames is not None and list(classnames) != self.target.classnames:
            self.target.set_classnames(classnames)

    # ------------------------------------------------------------------ encoders
    def prompts(self, route: Route | Literal["backbone"] = "base") -> Prompts:
        """The ``Prompts`` of the target for ``route`` ("backbone": P)."""
        self._check_attached()
        tensors = self.frozen_tensors() if route == "backbone" else self.route_tensors(route)
        return functional_call(self.target.prompt, tensors, ())

    def _class_positions(self, classes: Any) -> Tensor:
        idx = self.target.class_indices(classes)
        return torch.arange(len(self.target.classnames)) if idx is None else idx

    def encode_text(self, classes: Any = None, *, route: Route | None = None, normalize: bool = True) -> Tensor:
        """(C', E) text features (fp32, or fp64 for a float64 model); each class uses its own route
        unless ``route`` is given."""
        self._check_attached()
        idx = self._class_positions(classes)
        if route is not None:
            return self.target.encode_text(idx, prompts=self.prompts(route), normalize=normalize)
        is_base = self.base_mask()[idx]
        parts, order = [], []
        for r, sel in (("base", is_base), ("new", ~is_base)):
            if sel.any():
                parts.append(self.target.encode_text(idx[sel], prompts=self.prompts(r), normalize=normalize))
                order.append(torch.nonzero(sel).flatten())
        feats, order = torch.cat(parts), torch.cat(order)
        return feats[torch.argsort(order).to(feats.device)]

    def _has_visual_prompts(self) -> bool:
        """True when the target's prompts change image features (visual prompts, an image head): image
        features then differ per route."""
        return self.target.prompt.affects_image()

    def encode_image(self, images: Tensor, *, route: Route | None = None, normalize: bool = True) -> Tensor:
        """(B, E) image features with the prompts of ``route``.

        With visual prompts the features differ per route, so ``route`` is required: "base" for base
        classes, "new" for new ones (or call the wrapper, ``wrapper(images, classes=...)``, which routes
        each class itself); without it ``ConfigError``. Text-only prompts leave the image features the
        same for every route, and ``route`` defaults to "base"."""
        self._check_attached()
        if route is None:
            if self._has_visual_prompts():
                raise ConfigError(
                    "encode_image(images) without route=: with visual prompts the image features differ per "
                    "route (base classes use the tuned prompt, new classes the backbone prompt), so no default "
                    "is safe. Pass route=\"base\" or route=\"new\", or call the wrapper itself, "
                    "wrapper(images, classes=...), which routes each class")
            route = "base"
        return self.target.encode_image(images, prompts=self.prompts(route), normalize=normalize)

    def forward(self, *inputs: Any, classes: Any = None, route: Route | None = None, **kwargs: Any) -> Tensor:
        """(B, C') logits over ``classes`` (default: all), base columns from the base route and
        new columns from the new route (or every column from ``route``)."""
        self._check_attached()
        if len(inputs) != 1 or kwargs:
            raise ConfigError("call the wrapper as wrapper(images, classes=None, route=None)")
        images = inputs[0]
        idx = self._class_positions(classes)
        text = self.encode_text(idx, route=route)
        if route is not None or not self._has_visual_prompts() or not self.target._enabled:
            return self.target.logits(self.encode_image(images, route=route or "base"), text)
        is_base = self.base_mask()[idx].to(text.device)
        routes = [r for r, sel in (("base", is_base), ("new", ~is_base)) if sel.any()]
        if len(routes) == 1:
            return self.target.logits(self.encode_image(images, route=routes[0]), text)
        base = self.target.logits(self.encode_image(images, route="base"), text)
        new = self.target.logits(self.encode_image(images, route="new"), text)
        return torch.where(is_base[None, :], base, new)

    def route_view(self, route: Route = "base") -> RouteView:
        """The target seen through ``route`` (see ``route_view.py``): a loss written for a ``PromptedCLIP`` (the
        backbone's own: CE, PromptSRC's, KgCoOp's, PromptKD's KD) then trains the parallel prompt."""
        if route not in ("base", "new"):
            raise ConfigError(f"route={route!r} is unknown: use 'base' or 'new'")
        return RouteView(self, route)

    @torch.no_grad()
    def backbone_logits(self, images: Tensor, classes: Any = None) -> Tensor:
        """(B, C') logits of the frozen backbone (P for every class), without gradients:
        the scorer of the hard-negative sampler."""
        self._check_attached()
        p = self.prompts("backbone")
        return self.target.logits(self.target.encode_image(images, prompts=p),
                                  self.target.encode_text(self._class_positions(classes), prompts=p))

    # ------------------------------------------------------------------ control and checkpoints
    def eject(self) -> nn.Module:
        """Detach DPC and the ``PromptedCLIP`` under it; returns the untouched CLIP model."""
        return self.unwrap().eject()

    def adapter_config(self) -> AdapterConfig:
        inner = self.target.adapter_config()
        return super().adapter_config().replace(inner=inner.to_dict(), backbone=inner.backbone)

    def adapter_state_dict(self) -> dict[str, Tensor]:
        state = super().adapter_state_dict()
        dualised = {f"prompt.{n}" for n in self.tensor_names}
        state.update({f"inner.{k}": v for k, v in self.target.adapter_state_dict().items() if k not in dualised})
        return state
