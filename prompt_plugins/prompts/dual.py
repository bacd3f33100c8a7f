"""DPC (Dual-Prompt Collaboration, CVPR 2025): a frozen backbone prompt P plus a trainable parallel prompt.

``DualPromptWrapper`` plugs onto a trained prompt learner (stage 1) and decouples base
classes from new classes (stage 2). Every trainable prompt tensor of the target (layer-0
context, deep text prompts, visual prompts, any other parameter of the prompt module) is
"dualised": a frozen copy ``P`` is kept as a buffer and a trainable parameter of the same
shape is created. Nothing is hooked: the target is evaluated with substituted tensors
through ``torch.func.functional_call``.

Two parametrisations (``mode``), with ``delta`` the learned offset from ``P``:

``"converse"`` (default; what the released DPC code does)
    The stored parameter is the *mixed* prompt ``M`` (init ``M = P``). It decodes to the
    parallel prompt ``X = (M - (1 - w_b) P) / w_b``, computed as ``P + (M - P) / w_b`` so
    that ``X == P`` bit for bit at initialisation. Base classes use ``X``; new classes use
    ``w_n X + (1 - w_n) P`` (``== P`` exactly for ``w_n = 0``). Because
    ``dL/dM = dL/dX / w_b``, plain SGD on ``M`` moves ``X`` by ``-(lr / w_b**2) dL/dX``:
    with ``w_b = 0.2`` the effective step is 25x the learning rate. ``w_b`` is a gradient
    scale plus a convention for what is saved (``M``, as in the official checkpoints).

``"paper"`` (the paper's formula)
    The parameter is the parallel prompt ``P'`` itself (init ``P' = P``). Base classes use
    ``w_b P' + (1 - w_b) P``; new classes use ``w_n P' + (1 - w_n) P``. Here SGD moves the
    base prompt by ``-(lr * w_b**2) dL/dP_base``: ``w_b**4`` times the converse step.

Logits over any mix of base and new classes come from one call: each class is evaluated
with the prompts of its route (text features per route; image features per route only
when the prompts have a visual part).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Literal, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..errors import ClassNameError, ConfigError, PromptPluginsError, UnsupportedModelError
from ..precision import at_least_fp32
from .base import Prompts

Route = Literal["base", "new"]
MODES = ("converse", "paper")


def _check_weight(name: str, value: Any, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= 1):
        bound = "[0, 1]" if allow_zero else "(0, 1]"
        raise ConfigError(f"{name}={value} is out of range: it must be in {bound}")
    return float(value)


def _is_prompted(target: nn.Module) -> bool:
    from ..model import PromptedCLIP

    return isinstance(target, PromptedCLIP)


def foreign_prompt_names(target: nn.Module) -> list[str]:
    """Prompt tensors of a foreign CoOp-style model: every parameter under a ``prompt_learner``
    module, plus parameters named ``ctx`` or ``VPT*`` (ViFi-CLIP / PromptKD visual prompts)."""
    names = []
    for name, _ in target.named_parameters():
        parts = name.split(".")
        if "prompt_learner" in parts[:-1] or parts[-1] == "ctx" or parts[-1].startswith("VPT"):
            names.append(name)
    return names


class DualPromptWrapper(nn.Module):
    """DPC on a ``PromptedCLIP`` or on a foreign CoOp-style model (see the module docstring).

    target:        a ``PromptedCLIP`` (what ``pp.wrap`` returns) or any ``nn.Module`` whose
                   prompt learner exposes a ``ctx`` parameter (official CoOp ``CustomCLIP``,
                   ViFi-CLIP); a foreign model's ``forward`` must return (B, C) logits.
    base_classes:  names or indices of the base classes (default: every class); the others are new.
    weight_base:   w_b in (0, 1] (paper default 0.2).
    weight_new:    w_n in [0, 1] (default 0: new classes use the backbone prompt P exactly).
    mode:          "converse" (released code) or "paper".
    classnames:    for a foreign model, the names of its output columns (optional).
    prompt_names:  for a foreign model, which parameters are prompts (default: ``foreign_prompt_names``).
    """

    def __init__(
        self,
        target: nn.Module,
        base_classes: Sequence[str] | Sequence[int] | None = None,
        weight_base: float = 0.2,
        weight_new: float = 0.0,
        mode: str = "converse",
        classnames: Sequence[str] | None = None,
        *,
        prompt_names: Sequence[str] | None = None,
    ):
        super().__init__()
        if not isinstance(target, nn.Module):
            raise UnsupportedModelError(f"DPC wraps an nn.Module, got {type(target).__name__}")
        if mode not in MODES:
            raise ConfigError(f"mode={mode!r} is unknown: use one of {list(MODES)}")
        self.mode = mode
        self.weight_base = _check_weight("weight_base", weight_base, allow_zero=False)
        self.weight_new = _check_weight("weight_new", weight_new, allow_zero=True)
        self.target = target
        self.is_foreign = not _is_prompted(target)
        holder = target if self.is_foreign else target.prompt
        params = dict(holder.named_parameters())
        if prompt_names is None:
            names = foreign_prompt_names(target) if self.is_foreign else list(params)
        else:
            names = list(prompt_names)
            unknown = [n for n in names if n not in params]
            if unknown:
                raise ConfigError(f"prompt_names {unknown} are not parameters of {type(holder).__name__}")
        if not names:
            what = ("no parameter under a 'prompt_learner' module and none named 'ctx' or 'VPT*'"
                    if self.is_foreign else "its prompt module has no parameters")
            raise UnsupportedModelError(
                f"{type(target).__name__} has no prompt tensor to dualise ({what}); wrap a model with a "
                "trained prompt learner, or pass prompt_names=[...]")
        self.tensor_names: list[str] = names
        # a foreign model is frozen whole (CoOp trainers freeze everything but the prompt learner);
        # a PromptedCLIP already froze its CLIP weights, so only its prompt module is frozen here
        self._requires_grad = {n: p.requires_grad for n, p in holder.named_parameters()}
        holder.requires_grad_(False)
        self._keys = self._make_keys(names)
        self.frozen = nn.Module()
        self.trainable = nn.ParameterDict()
        for name, key in zip(names, self._keys):
            p = params[name].detach().clone()
            self.frozen.register_buffer(key, p)
            self.trainable[key] = nn.Parameter(p.clone())
        self._ejected = False
        self._set_classes(classnames, base_classes)

    # ------------------------------------------------------------------ classes
    @staticmethod
    def _make_keys(names: Sequence[str]) -> list[str]:
        keys = []
        for i, name in enumerate(names):
            key = name.replace(".", "__")
            keys.append(key if key not in keys else f"{key}__{i}")
        return keys

    def _set_classes(self, classnames: Sequence[str] | None, base_classes: Any) -> None:
        if self.is_foreign:
            self._foreign_names = list(classnames) if classnames is not None else None
            names = self._foreign_names
        else:
            if classnames is not None and list(classnames) != self.target.classnames:
                self.target.set_classnames(classnames)
            names = self.target.classnames
        n = len(names) if names is not None else None
        if base_classes is None:
            if n is None:
                self._base_idx = None  # every output column is base
                return
            idx = list(range(n))
        else:
            if isinstance(base_classes, str):
                raise ClassNameError(f"base_classes must be a list, got the single string {base_classes!r}")
            idx = []
            for c in list(base_classes.tolist() if isinstance(base_classes, Tensor) else base_classes):
                if isinstance(c, str):
                    if names is None:
                        raise ClassNameError(
                            f"base class {c!r} given by name but the model's class names are unknown: "
                            "pass classnames=[...] (the names of its output columns) or base class indices")
                    if c not in names:
                        raise ClassNameError(f"base class {c!r} is not in the class list "
                                             f"{names[:10]}{' ...' if len(names) > 10 else ''}; fix base_classes")
                    idx.append(names.index(c))
                elif isinstance(c, int) and not isinstance(c, bool):
                    if c < 0 or (n is not None and c >= n):
                        raise ClassNameError(f"base class index {c} is out of range for {n} classes")
                    idx.append(c)
                else:
                    raise ClassNameError(f"base classes must be names or indices, got {c!r}")
            if len(set(idx)) != len(idx):
                raise ClassNameError(f"base_classes has duplicates: {list(base_classes)}")
        self._base_idx = sorted(idx)

    def set_classnames(self, classnames: Sequence[str], base_classes: Sequence[str] | Sequence[int] | None = None
                       ) -> None:
        """Re-target to a new class list. ``base_classes`` defaults to the known base class
        names that appear in the new list (every other class is new)."""
        if base_classes is None:
            known = set(self.base_classnames or [])
            base_classes = [c for c in classnames if c in known]
        self._set_classes(classnames, base_classes)

    @property
    def classnames(self) -> list[str] | None:
        return self._foreign_names if self.is_foreign else self.target.classnames

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

    # ------------------------------------------------------------------ the two prompts
    def _delta(self, key: str) -> Tensor:
        P, theta = self.frozen.get_buffer(key), self.trainable[key]
        diff = at_least_fp32(theta) - at_least_fp32(P)
        return diff / self.weight_base if self.mode == "converse" else diff

    def route_tensors(self, route: Route) -> dict[str, Tensor]:
        """Prompt tensors for ``route``, keyed by the target's parameter names.

        converse: base = X = P + (M - P)/w_b;   new = P + w_n (X - P)
        paper:    base = P + w_b (P' - P);      new = P + w_n (P' - P)
        """
        if route not in ("base", "new"):
            raise ConfigError(f"route={route!r} is unknown: use 'base' or 'new'")
        out = {}
        for name, key in zip(self.tensor_names, self._keys):
            P = self.frozen.get_buffer(key)
            if route == "base":
                w = 1.0 if self.mode == "converse" else self.weight_base
            else:
                w = self.weight_new
            if w == 0.0:
                out[name] = P
            else:
                d = self._delta(key)
                out[name] = (at_least_fp32(P) + (d if w == 1.0 else w * d)).to(P.dtype)
        return out

    def frozen_tensors(self) -> dict[str, Tensor]:
        """The backbone prompt P, keyed by the target's parameter names."""
        return {name: self.frozen.get_buffer(key) for name, key in zip(self.tensor_names, self._keys)}

    def prompts(self, route: Route | Literal["backbone"] = "base") -> Prompts:
        """The ``Prompts`` of a ``PromptedCLIP`` target for ``route`` ("backbone": P)."""
        self._check_prompted("prompts")
        tensors = self.frozen_tensors() if route == "backbone" else self.route_tensors(route)
        return functional_call(self.target.prompt, tensors, ())

    # ------------------------------------------------------------------ encoders (PromptedCLIP target)
    def _check_prompted(self, what: str) -> None:
        if self._ejected:
            raise PromptPluginsError("this DualPromptWrapper was ejected; wrap the model again")
        if self.is_foreign:
            raise PromptPluginsError(
                f"{what}() needs a prompt-plugins PromptedCLIP target; this wrapper drives a foreign "
                f"{type(self.target).__name__}: call the wrapper on its inputs to get logits")

    def _class_positions(self, classes: Any) -> Tensor:
        idx = self.target.class_indices(classes)
        return torch.arange(len(self.target.classnames)) if idx is None else idx

    def _has_visual(self) -> bool:
        return self.target.prompt().visual is not None

    def encode_text(self, classes: Any = None, *, route: Route | None = None, normalize: bool = True) -> Tensor:
        """(C', E) text features (fp32, or fp64 for a float64 model); each class uses its own route
        unless ``route`` is given."""
        self._check_prompted("encode_text")
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

    def encode_image(self, images: Tensor, *, route: Route = "base", normalize: bool = True) -> Tensor:
        """(B, E) image features with the prompts of ``route`` (matters only with visual prompts)."""
        self._check_prompted("encode_image")
        return self.target.encode_image(images, prompts=self.prompts(route), normalize=normalize)

    def forward(self, *inputs: Any, classes: Any = None, route: Route | None = None, **kwargs: Any) -> Tensor:
        """(B, C') logits over ``classes`` (default: all), base columns from the base route and
        new columns from the new route (or every column from ``route``)."""
        if self._ejected:
            raise PromptPluginsError("this DualPromptWrapper was ejected; wrap the model again")
        if self.is_foreign:
            return self._foreign_forward(inputs, kwargs, classes, route)
        if len(inputs) != 1 or kwargs:
            raise ConfigError("call the wrapper as wrapper(images, classes=None, route=None)")
        images = inputs[0]
        idx = self._class_positions(classes)
        text = self.encode_text(idx, route=route)
        if route is not None or not self._has_visual() or not self.target._enabled:
            img = self.encode_image(images, route=route or "base")
            return self.target.logits(img, text)
        is_base = self.base_mask()[idx].to(text.device)
        routes = [r for r, sel in (("base", is_base), ("new", ~is_base)) if sel.any()]
        if len(routes) == 1:
            return self.target.logits(self.encode_image(images, route=routes[0]), text)
        base = self.target.logits(self.encode_image(images, route="base"), text)
        new = self.target.logits(self.encode_image(images, route="new"), text)
        return torch.where(is_base[None, :], base, new)

    def _foreign_forward(self, inputs: tuple, kwargs: dict, classes: Any, route: Route | None) -> Tensor:
        def run(r: str) -> Tensor:
            tensors = self.frozen_tensors() if r == "backbone" else self.route_tensors(r)
            return functional_call(self.target, tensors, inputs, kwargs)

        if route is not None:
            logits = run(route)
        else:
            base = run("base")
            mask = self.base_mask(base.shape[-1]).to(base.device)
            logits = base if bool(mask.all()) else torch.where(mask, base, run("new"))
        return logits if classes is None else logits[..., self._foreign_positions(classes)]

    def _foreign_positions(self, classes: Any) -> Tensor:
        if isinstance(classes, Tensor):
            return classes.long().flatten()
        classes = list(classes)
        if classes and all(isinstance(c, str) for c in classes):
            names = self.classnames
            if names is None:
                raise ClassNameError("classes given by name, but this foreign model's class names are unknown")
            missing = [c for c in classes if c not in names]
            if missing:
                raise ClassNameError(f"unknown class names {missing}")
            return torch.tensor([names.index(c) for c in classes], dtype=torch.long)
        return torch.tensor(classes, dtype=torch.long)

    @torch.no_grad()
    def backbone_logits(self, *inputs: Any, classes: Any = None, **kwargs: Any) -> Tensor:
        """(B, C') logits of the frozen backbone (P for every class), without gradients:
        the scorer of the hard-negative sampler."""
        if self.is_foreign:
            logits = functional_call(self.target, self.frozen_tensors(), inputs, kwargs)
            return logits if classes is None else logits[..., self._foreign_positions(classes)]
        self._check_prompted("backbone_logits")
        p = self.prompts("backbone")
        images = inputs[0]
        idx = self._class_positions(classes)
        return self.target.logits(self.target.encode_image(images, prompts=p),
                                  self.target.encode_text(idx, prompts=p))

    # ------------------------------------------------------------------ control
    @contextmanager
    def disabled(self) -> Iterator["DualPromptWrapper"]:
        """Zero-shot CLIP inside the block (delegates to ``PromptedCLIP.disabled``)."""
        if self.is_foreign:
            raise PromptPluginsError(
                "a foreign model has no zero-shot path to fall back to; use backbone_logits() for the "
                "stage-1 model or route='new' with weight_new=0")
        with self.target.disabled():
            yield self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.trainable.values() if p.requires_grad]

    def unwrap(self) -> nn.Module:
        """Restore the target's ``requires_grad`` flags and return it (its prompts are still P)."""
        holder = self.target if self.is_foreign else self.target.prompt
        for name, p in holder.named_parameters():
            p.requires_grad_(self._requires_grad.get(name, p.requires_grad))
        self._ejected = True
        return self.target

    def eject(self) -> nn.Module:
        """Detach DPC: a ``PromptedCLIP`` target is ejected too and the untouched CLIP model is
        returned; a foreign model is returned with its ``requires_grad`` flags restored."""
        target = self.unwrap()
        return target if self.is_foreign else target.eject()

    # ------------------------------------------------------------------ checkpoints
    def adapter_config(self) -> dict[str, Any]:
        from .._version import __version__

        dpc = {
            "mode": self.mode,
            "weight_base": self.weight_base,
            "weight_new": self.weight_new,
            "tensors": list(self.tensor_names),
            "target": "foreign" if self.is_foreign else "prompted",
            "base_classes": self.base_classnames if self.classnames is not None else None,
            "base_indices": self.base_indices,
        }
        config: dict[str, Any] = {"method": "dpc", "dpc": dpc, "classnames": self.classnames,
                                  "package_version": __version__}
        if not self.is_foreign:
            config["inner"] = self.target.adapter_config()
            config["backbone"] = config["inner"].get("backbone")
        return config

    def _param_label(self) -> str:
        return "M" if self.mode == "converse" else "P_prime"

    def adapter_state_dict(self) -> dict[str, Tensor]:
        """``dpc.P.<name>`` (frozen backbone prompt), ``dpc.M.<name>`` (converse) or
        ``dpc.P_prime.<name>`` (paper), and ``inner.*``: the target's other adapter tensors."""
        state = {}
        label = self._param_label()
        for name, key in zip(self.tensor_names, self._keys):
            state[f"dpc.P.{name}"] = self.frozen.get_buffer(key).detach()
            state[f"dpc.{label}.{name}"] = self.trainable[key].detach()
        if not self.is_foreign:
            dualised = {f"prompt.{n}" for n in self.tensor_names}
            for k, v in self.target.adapter_state_dict().items():
                if k not in dualised:
                    state[f"inner.{k}"] = v
        return state

    def load_adapter_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load P and M (or P') strictly; the target's own prompt tensors are set to P."""
        from ..errors import CheckpointError

        label = self._param_label()
        expected = {f"dpc.P.{n}" for n in self.tensor_names} | {f"dpc.{label}.{n}" for n in self.tensor_names}
        given = {k for k in state if k.startswith("dpc.")}
        if given != expected:
            raise CheckpointError(
                f"DPC checkpoint does not fit this wrapper ({self.mode} mode): missing "
                f"{sorted(expected - given)}, unexpected {sorted(given - expected)}")
        holder = self.target if self.is_foreign else self.target.prompt
        params = dict(holder.named_parameters())
        with torch.no_grad():
            for name, key in zip(self.tensor_names, self._keys):
                for src, dst in ((state[f"dpc.P.{name}"], self.frozen.get_buffer(key)),
                                 (state[f"dpc.{label}.{name}"], self.trainable[key]),
                                 (state[f"dpc.P.{name}"], params[name])):
                    if tuple(src.shape) != tuple(dst.shape):
                        raise CheckpointError(f"DPC tensor {name!r} has shape {tuple(src.shape)} in the "
                                              f"checkpoint but {tuple(dst.shape)} in the model")
                    if not torch.isfinite(src).all():
                        raise CheckpointError(f"DPC tensor {name!r} contains NaN or inf values")
                    dst.copy_(src.to(dst.dtype))

    @classmethod
    def from_backbone_checkpoint(cls, model: nn.Module, directory: Any, *, base_classes: Any = None,
                                 classnames: Sequence[str] | None = None, weight_base: float = 0.2,
                                 weight_new: float = 0.0, mode: str = "converse", **options: Any
                                 ) -> "DualPromptWrapper":
        """Stage 2 from a saved stage-1 adapter (``pp.save_pretrained`` of a CoOp/IVLP run)."""
        from ..methods import from_pretrained

        prompted = from_pretrained(model, directory, classnames=classnames, **options)
        return cls(prompted, base_classes, weight_base, weight_new, mode)

    def extra_repr(self) -> str:
        n_base = "all" if self._base_idx is None else len(self._base_idx)
        return (f"mode={self.mode}, weight_base={self.weight_base}, weight_new={self.weight_new}, "
                f"tensors={self.tensor_names}, base_classes={n_base}")


# ---------------------------------------------------------------------- method registry glue
DPC_OPTIONS = ("base_classes", "weight_base", "weight_new", "mode")


def build_dpc(model: nn.Module, classnames: Sequence[str], **options: Any) -> DualPromptWrapper:
    """``pp.wrap(model, classnames, method="dpc", base_classes=..., weight_base=0.2, weight_new=0.0,
    mode="converse", **coop_options)``: a SoftPrompt (CoOp/IVLP options) wrapped with DPC."""
    from ..methods import build_coop

    dpc = {k: options.pop(k) for k in DPC_OPTIONS if k in options}
    prompted = build_coop(model, classnames, **options)
    return DualPromptWrapper(prompted, **dpc)


def load_dpc(model: nn.Module, config: dict[str, Any], state: dict[str, Tensor], classnames: Sequence[str] | None,
             tokenizer: Any = None, base_classes: Any = None, **model_options: Any) -> DualPromptWrapper:
    """Rebuild a saved DPC adapter. With a new class list, the saved base class names that appear
    in it stay base and every other class is new (unless ``base_classes`` is given)."""
    from ..methods import load_prompted

    dpc = config.get("dpc")
    if not isinstance(dpc, dict) or "tensors" not in dpc:
        raise ConfigError("adapter_config.json of a 'dpc' adapter has no 'dpc' section")
    opts = dict(weight_base=dpc.get("weight_base", 0.2), weight_new=dpc.get("weight_new", 0.0),
                mode=dpc.get("mode", "converse"))
    names = list(classnames) if classnames is not None else config.get("classnames")
    if base_classes is None:
        saved = dpc.get("base_classes")
        if saved is not None and names is not None:
            base_classes = [c for c in names if c in set(saved)]
        elif dpc.get("base_indices") is not None and classnames is None:
            base_classes = list(dpc["base_indices"])
        elif names is not None:
            raise ConfigError("this DPC checkpoint does not record which classes are base: "
                              "pass base_classes=[...] to from_pretrained")
    if dpc.get("target") == "foreign":
        wrapper = DualPromptWrapper(model, base_classes, classnames=names, prompt_names=dpc["tensors"], **opts)
    else:
        inner_cfg = config.get("inner")
        if not isinstance(inner_cfg, dict):
            raise ConfigError("adapter_config.json of a 'dpc' adapter has no 'inner' section")
        inner_state = {k[len("inner."):]: v for k, v in state.items() if k.startswith("inner.")}
        for n in dpc["tensors"]:
            if f"dpc.P.{n}" not in state:
                from ..errors import CheckpointError

                raise CheckpointError(f"DPC checkpoint lacks the backbone prompt tensor 'dpc.P.{n}'")
            inner_state[f"prompt.{n}"] = state[f"dpc.P.{n}"]
        prompted = load_prompted(model, inner_cfg, inner_state, names, tokenizer, **model_options)
        wrapper = DualPromptWrapper(prompted, base_classes, prompt_names=dpc["tensors"], **opts)
    wrapper.load_adapter_state_dict(state)
    return wrapper
