"""DPC on a foreign CoOp-style model (official CoOp ``CustomCLIP``, ViFi-CLIP, PromptKD): the model is
frozen whole and run with substituted prompt tensors; its ``forward`` must return (B, C) logits."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, NoReturn, Sequence

from torch import Tensor, nn
from torch.func import functional_call

from ...classes import class_indices
from ...errors import PromptPluginsError
from ...model import PromptedCLIP
from .dual import Route
from .wrapper import DualPromptWrapper


def foreign_prompt_names(target: nn.Module) -> list[str]:
    """Prompt tensors of a foreign CoOp-style model: every parameter under a ``prompt_learner``
    module, plus parameters named ``ctx`` or ``VPT*`` (ViFi-CLIP / PromptKD visual prompts)."""
    names = []
    for name, _ in target.named_parameters():
        parts = name.split(".")
        if "prompt_learner" in parts[:-1] or parts[-1] == "ctx" or parts[-1].startswith("VPT"):
            names.append(name)
    return names


class ForeignDualWrapper(DualPromptWrapper):
    """``DualPromptWrapper`` over a foreign model (what ``DualPromptWrapper(custom_clip, ...)`` returns)."""

    is_foreign = True

    @classmethod
    def accepts(cls, target: Any) -> bool:
        return isinstance(target, nn.Module) and not isinstance(target, PromptedCLIP)

    def prompt_holder(self, target: nn.Module) -> nn.Module:
        return target  # CoOp trainers freeze everything but the prompt learner: so does the wrapper

    def default_prompt_names(self, target: nn.Module) -> list[str]:
        return foreign_prompt_names(target)

    def no_prompt_reason(self) -> str:
        return "no parameter under a 'prompt_learner' module and none named 'ctx' or 'VPT*'"

    @property
    def classnames(self) -> list[str] | None:
        return self._foreign_names

    def _set_classnames(self, classnames: Sequence[str] | None) -> None:
        self._foreign_names = list(classnames) if classnames is not None else None

    def _run(self, route: str, inputs: tuple, kwargs: dict) -> Tensor:
        tensors = self.frozen_tensors() if route == "backbone" else self.route_tensors(route)
        return functional_call(self.target, tensors, inputs, kwargs)

    def _select(self, logits: Tensor, classes: Any) -> Tensor:
        return logits if classes is None else logits[..., class_indices(classes, self.classnames)]

    def forward(self, *inputs: Any, classes: Any = None, route: Route | None = None, **kwargs: Any) -> Tensor:
        """(B, C') logits of the target: base columns with the base route, new ones with the new route."""
        self._check_attached()
        if route is not None:
            return self._select(self._run(route, inputs, kwargs), classes)
        base = self._run("base", inputs, kwargs)
        mask = self.base_mask(base.shape[-1]).to(base.device)
        return self._select(base if bool(mask.all()) else base.where(mask, self._run("new", inputs, kwargs)), classes)

    def backbone_logits(self, *inputs: Any, classes: Any = None, **kwargs: Any) -> Tensor:
        """(B, C') logits of the frozen backbone (P everywhere), without gradients."""
        import torch

        with torch.no_grad():
            return self._select(self._run("backbone", inputs, kwargs), classes)

    def _no_clip_path(self, what: str) -> NoReturn:
        raise PromptPluginsError(
            f"{what}() needs a prompt-plugins PromptedCLIP target; this wrapper drives a foreign "
            f"{type(self.target).__name__}: call the wrapper on its inputs to get logits")

    def encode_text(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._no_clip_path("encode_text")

    def encode_image(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._no_clip_path("encode_image")

    def prompts(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._no_clip_path("prompts")

    @contextmanager
    def disabled(self) -> Iterator[DualPromptWrapper]:
        raise PromptPluginsError(
            "a foreign model has no zero-shot path to fall back to; use backbone_logits() for the "
            "stage-1 model or route='new' with weight_new=0")
        yield self  # pragma: no cover
