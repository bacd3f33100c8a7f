"""One ``PromptedCLIP`` per model at a time: which wrapper a CLIP model is attached to.

Two live wrappers on one model would share its frozen weights, and ``eject()`` of either would restore
``requires_grad`` on them while the other still trains, so an optimiser step would fine-tune the backbone.
``PromptedCLIP`` therefore checks here on attach and records itself; ``eject()`` clears the record and restores
the ``ModuleState`` (training and ``requires_grad`` flags) captured on attach.

The record is a ``WeakKeyDictionary`` (model -> weak reference to its wrapper): it keeps neither alive, and
unlike an attribute on the model it travels neither with ``copy.deepcopy(model)`` nor with ``torch.save(model)``.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from torch import nn

from .errors import ConfigError

_ATTACHED: "weakref.WeakKeyDictionary[nn.Module, weakref.ref]" = weakref.WeakKeyDictionary()


def attached_wrapper(model: nn.Module) -> Any | None:
    """The wrapper attached to ``model`` and not ejected since, or None."""
    ref = _ATTACHED.get(model)
    return None if ref is None else ref()


def check_not_attached(model: nn.Module) -> None:
    """Raise ``ConfigError`` if another wrapper is attached to ``model``."""
    earlier = attached_wrapper(model)
    if earlier is not None:
        raise ConfigError(
            f"model={type(model).__name__} already carries prompts from an earlier wrap "
            f"({type(earlier).__name__}, method={getattr(earlier, 'method', '?')!r}) that is still attached: "
            "a second wrap would share its frozen CLIP weights, and ejecting either would unfreeze them while "
            "the other trains. Call .eject() on the earlier wrapper first (its prompt tensors stay readable), "
            "or wrap a copy: pp.wrap(copy.deepcopy(model), ...)")


def mark_attached(model: nn.Module, wrapper: Any) -> None:
    _ATTACHED[model] = weakref.ref(wrapper)


def mark_detached(model: nn.Module, wrapper: Any) -> None:
    """Clear the record if it names ``wrapper`` (an older, already ejected wrapper clears nothing)."""
    if attached_wrapper(model) is wrapper:
        del _ATTACHED[model]


@dataclass(frozen=True)
class ModuleState:
    """What a wrapper changes on the module it attaches to and restores on eject: every submodule's training
    flag (``wrapper.train()`` reaches the model) and every parameter's ``requires_grad``."""

    training: dict[str, bool]
    requires_grad: dict[str, bool]

    @classmethod
    def capture(cls, module: nn.Module) -> "ModuleState":
        return cls({n: m.training for n, m in module.named_modules()},
                   {n: p.requires_grad for n, p in module.named_parameters()})

    def restore(self, module: nn.Module) -> None:
        for name, m in module.named_modules():
            m.training = self.training.get(name, m.training)
        for name, p in module.named_parameters():
            p.requires_grad_(self.requires_grad.get(name, p.requires_grad))
