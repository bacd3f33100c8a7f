"""``DualPromptWrapper``: DPC stage 2 on a trained prompt learner (a ``PromptedCLIP`` or a foreign CoOp-style
model). What the two targets share lives here; ``prompted.py`` and ``foreign.py`` drive each kind, and
``DualPromptWrapper(target, ...)`` returns the right one.

Every trainable prompt tensor of the target (layer-0 context, deep text prompts, visual prompts, any other
parameter of the prompt module) is "dualised": a frozen copy P is kept and a trainable tensor of the same
shape is created (``dual.py`` says how the routes combine them). Nothing is hooked: the target is evaluated
with substituted tensors through ``torch.func.functional_call``. Logits over any mix of base and new classes
come from one call: each class is evaluated with the prompts of its route.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, ClassVar, Iterator, Sequence

import torch
from torch import Tensor, nn

from ...attachment import ModuleState
from ...checkpoint import AdapterConfig
from ...classes import did_you_mean
from ...errors import ClassNameError, ConfigError, PromptPluginsError, UnsupportedModelError
from .config import DPCOptions, DPCSection
from .dual import DualPrompt


def base_indices_of(names: Sequence[str] | None, base_classes: Any) -> list[int] | None:
    """Sorted indices of ``base_classes`` (names or indices) in ``names``; None: every column is base
    and the number of columns is unknown (a foreign model without class names)."""
    n = None if names is None else len(names)
    if base_classes is None:
        return None if n is None else list(range(n))
    idx = []
    for c in list(base_classes.tolist() if isinstance(base_classes, Tensor) else base_classes):
        if isinstance(c, str):
            if names is None:
                raise ClassNameError(f"base class {c!r} given by name but the model's class names are unknown: "
                                     "pass classnames=[...] (the names of its output columns) or base class indices")
            if c not in names:
                raise ClassNameError(f"base class {c!r} is not in the class list{did_you_mean(c, names)} "
                                     f"{list(names[:10])}{' ...' if len(names) > 10 else ''}; fix base_classes")
            idx.append(names.index(c))
        elif isinstance(c, int) and not isinstance(c, bool):
            if c < 0 or (n is not None and c >= n):
                raise ClassNameError(f"base class index {c} is out of range for {n} classes")
            idx.append(c)
        else:
            raise ClassNameError(f"base classes must be names or indices, got {c!r}")
    if len(set(idx)) != len(idx):
        raise ClassNameError(f"base_classes has duplicates: {list(base_classes)}")
    return sorted(idx)


class DualPromptWrapper(DualPrompt):
    """DPC on a ``PromptedCLIP`` or on a foreign CoOp-style model.

    target:        a ``PromptedCLIP`` (what ``pp.wrap`` returns) or any ``nn.Module`` whose prompt learner
                   exposes a ``ctx`` parameter (official CoOp ``CustomCLIP``, ViFi-CLIP); a foreign model's
                   ``forward`` must return (B, C) logits.
    base_classes:  names or indices of the base classes (default: every class); the others are new.
    weight_base:   w_b in (0, 1] (paper default 0.2).
    weight_new:    w_n in [0, 1] (default 0: new classes use the backbone prompt P exactly).
    mode:          "released" (default: what the released code trains, X with a 1/w_b gradient scale),
                   "converse" or "paper" (see ``methods/dpc/dual.py`` for what each is and its step size).
    classnames:    for a foreign model, the names of its output columns (optional).
    prompt_names:  which parameters of the target's prompt holder are prompts (default: all of a
                   ``PromptedCLIP``'s prompt module; for a foreign model ``foreign_prompt_names``).
    """

    #: the target kinds, each a subclass registered on definition; ``accepts(target)`` picks one
    _kinds: ClassVar[list[type["DualPromptWrapper"]]] = []
    is_foreign: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        DualPromptWrapper._kinds.append(cls)

    @classmethod
    def accepts(cls, target: Any) -> bool:
        return False

    def __new__(cls, target: Any = None, *args: Any, **kwargs: Any) -> "DualPromptWrapper":
        if cls is DualPromptWrapper:
            cls = next((kind for kind in DualPromptWrapper._kinds if kind.accepts(target)), cls)
        return super().__new__(cls)

    def __init__(self, target: nn.Module, base_classes: Sequence[str] | Sequence[int] | None = None,
                 weight_base: float = 0.2, weight_new: float = 0.0, mode: str = "released",
                 classnames: Sequence[str] | None = None, *, prompt_names: Sequence[str] | None = None):
        if not isinstance(target, nn.Module) or type(self) is DualPromptWrapper:
            raise UnsupportedModelError(f"DPC wraps an nn.Module, got {type(target).__name__}")
        opts = DPCOptions(base_classes, weight_base, weight_new, mode)
        holder = self.prompt_holder(target)
        params = dict(holder.named_parameters())
        names = self.default_prompt_names(target) if prompt_names is None else list(prompt_names)
        unknown = [n for n in names if n not in params]
        if unknown:
            raise ConfigError(f"prompt_names {unknown} are not parameters of {type(holder).__name__}")
        if not names:
            raise UnsupportedModelError(
                f"{type(target).__name__} has no prompt tensor to dualise ({self.no_prompt_reason()}); wrap a "
                "model with a trained prompt learner, or pass prompt_names=[...]")
        # the holder is frozen: P lives in it, and only the parallel prompt trains
        found = ModuleState.capture(target)
        holder.requires_grad_(False)
        super().__init__({n: params[n] for n in names}, mode=opts.mode, weight_base=opts.weight_base,
                         weight_new=opts.weight_new)
        self.target = target
        self._found = found
        self._ejected = False
        self._set_classes(classnames, opts.base_classes)

    # ------------------------------------------------------------------ what each target kind answers
    def prompt_holder(self, target: nn.Module) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def default_prompt_names(self, target: nn.Module) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def no_prompt_reason(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def classnames(self) -> list[str] | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_classnames(self, classnames: Sequence[str] | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ classes
    def _set_classes(self, classnames: Sequence[str] | None, base_classes: Any) -> None:
        self._set_classnames(classnames)
        self._base_idx = base_indices_of(self.classnames, base_classes)

    def set_classnames(self, classnames: Sequence[str], base_classes: Sequence[str] | Sequence[int] | None = None
                       ) -> None:
        """Re-target to a new class list. ``base_classes`` defaults to the known base class names that
        appear in the new list (every other class is new)."""
        if base_classes is None:
            known = set(self.base_classnames or [])
            base_classes = [c for c in classnames if c in known]
        self._set_classes(classnames, base_classes)

    @property
    def n_classes(self) -> int | None:
        names = self.classnames
        return None if names is None else len(names)

    @property
    def base_indices(self) -> list[int] | None:
        """Indices of the base classes (None: a foreign model of unknown width, all columns base)."""
        return None if self._base_idx is None else list(self._base_idx)

    @property
    def base_classnames(self) -> list[str] | None:
        names = self.classnames
        if names is None or self._base_idx is None:
            return None if names is None else list(names)
        return [names[i] for i in self._base_idx]

    def base_mask(self, n: int | None = None) -> Tensor:
        """(C,) bool, True for base classes."""
        n = self.n_classes if n is None else n
        if n is None:
            raise ConfigError("the number of classes is unknown: pass classnames=[...]")
        mask = torch.zeros(n, dtype=torch.bool)
        if self._base_idx is None:
            mask[:] = True
        else:
            if self._base_idx and self._base_idx[-1] >= n:
                raise ClassNameError(f"base class index {self._base_idx[-1]} is out of range for {n} output columns")
            mask[self._base_idx] = True
        return mask

    # ------------------------------------------------------------------ control
    def _check_attached(self) -> None:
        if self._ejected:
            raise PromptPluginsError("this DualPromptWrapper was ejected; wrap the model again")

    @contextmanager
    def disabled(self) -> Iterator["DualPromptWrapper"]:
        """Zero-shot CLIP inside the block (delegates to ``PromptedCLIP.disabled``)."""
        with self.target.disabled():
            yield self

    def unwrap(self) -> nn.Module:
        """Restore the target's ``requires_grad`` and training flags and return it (its prompts are still P);
        once, like ``PromptedCLIP.eject``."""
        if not self._ejected:
            self._found.restore(self.target)
        self._ejected = True
        return self.target

    def eject(self) -> nn.Module:
        """Detach DPC: a ``PromptedCLIP`` target is ejected too and the untouched CLIP model is
        returned; a foreign model is returned with its ``requires_grad`` flags restored."""
        return self.unwrap()

    # ------------------------------------------------------------------ checkpoints
    def adapter_config(self) -> AdapterConfig:
        section = DPCSection(mode=self.mode, weight_base=self.weight_base, weight_new=self.weight_new,
                             tensors=list(self.tensor_names), target="foreign" if self.is_foreign else "prompted",
                             base_classes=self.base_classnames if self.classnames is not None else None,
                             base_indices=self.base_indices)
        return AdapterConfig(method="dpc", dpc=section.to_dict(), classnames=self.classnames)

    def adapter_state_dict(self) -> dict[str, Tensor]:
        """``dpc.P.<name>`` (frozen backbone prompt), the trained tensor (``dpc.X.<name>``, ``dpc.M.<name>`` or
        ``dpc.P_prime.<name>`` by mode), and for a ``PromptedCLIP`` target ``inner.*``: its other adapter tensors."""
        return self.dual_state_dict()

    def load_adapter_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load P and the trained tensor strictly; the target's own prompt tensors are set to P."""
        self.load_dual_state_dict(state, also_into=dict(self.prompt_holder(self.target).named_parameters()))

    @classmethod
    def from_backbone_checkpoint(cls, model: nn.Module, directory: Any, *, base_classes: Any = None,
                                 classnames: Sequence[str] | None = None, weight_base: float = 0.2,
                                 weight_new: float = 0.0, mode: str = "released", **options: Any
                                 ) -> "DualPromptWrapper":
        """Stage 2 from a saved stage-1 adapter (``pp.save_pretrained`` of a CoOp/IVLP run)."""
        from ...registry import from_pretrained

        prompted = from_pretrained(model, directory, classnames=classnames, **options)
        return DualPromptWrapper(prompted, base_classes, weight_base, weight_new, mode)

    def extra_repr(self) -> str:
        n_base = "all" if self._base_idx is None else len(self._base_idx)
        return (f"mode={self.mode}, weight_base={self.weight_base}, weight_new={self.weight_new}, "
                f"tensors={self.tensor_names}, base_classes={n_base}")
