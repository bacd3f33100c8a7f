"""``wrap(model, classnames, method="dpc", ...)`` and the loader of saved DPC adapters."""
from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor

from ...checkpoint import AdapterConfig
from ...config import Config
from ...errors import CheckpointError, ConfigError
from ...model import PromptedCLIP
from ...registry import METHODS, Target, get_method
from .config import DPCOptions, DPCSection
from .wrapper import DualPromptWrapper


def backbone_method(name: Any):
    """The registered method DPC is built over (``backbone=``): any method whose ``wrap`` returns a ``PromptedCLIP``;
    DPC itself is refused."""
    if not isinstance(name, str) or name not in METHODS or name == "dpc":
        known = sorted(m for m in METHODS if m != "dpc")
        raise ConfigError(f"backbone={name!r} is not a method DPC can be built over: use one of {known}")
    return get_method(name)


def dpc_option_types(options: dict[str, Any]) -> tuple[type[Config], ...]:
    """``wrap(method="dpc", backbone=...)``'s option configs: DPC's own, then the backbone method's."""
    return (DPCOptions, *backbone_method(options.get("backbone", DPCOptions.backbone)).options)


def build_dpc(target: Target, classnames: Sequence[str], dpc: DPCOptions, *backbone: Config) -> DualPromptWrapper:
    """The backbone method (``dpc.backbone``, default "coop", built with its own options) wrapped with DPC:
    ``base_classes``, ``weight_base``, ``weight_new``, ``mode`` (``DPCOptions``)."""
    prompted = backbone_method(dpc.backbone).build(target, classnames, *backbone)
    if not isinstance(prompted, PromptedCLIP):  # pragma: no cover - every registered backbone builds one
        raise ConfigError(f"backbone={dpc.backbone!r} does not build a PromptedCLIP; DPC cannot be built over it")
    return DualPromptWrapper(prompted, dpc.base_classes, dpc.weight_base, dpc.weight_new, dpc.mode)


def load_dpc(target: Target, config: AdapterConfig, state: dict[str, Tensor], classnames: Sequence[str] | None,
             options: dict[str, Any]) -> DualPromptWrapper:
    """Rebuild a saved DPC adapter. With a new class list, the saved base class names that appear
    in it stay base and every other class is new (unless ``base_classes`` is given)."""
    if not isinstance(config.dpc, dict):
        raise ConfigError("adapter_config.json of a 'dpc' adapter has no 'dpc' section")
    dpc = DPCSection.from_dict(config.dpc, where="adapter_config.json 'dpc'")
    options = dict(options)
    base_classes = options.pop("base_classes", None)
    names = list(classnames) if classnames is not None else config.classnames
    if base_classes is None:
        if dpc.base_classes is not None and names is not None:
            base_classes = [c for c in names if c in set(dpc.base_classes)]
        elif dpc.base_indices is not None and classnames is None:
            base_classes = list(dpc.base_indices)
        elif names is not None:
            raise ConfigError("this DPC checkpoint does not record which classes are base: "
                              "pass base_classes=[...] to from_pretrained")
    weights = dict(weight_base=dpc.weight_base, weight_new=dpc.weight_new, mode=dpc.mode)
    if dpc.target == "foreign":
        wrapper = DualPromptWrapper(target.model, base_classes, classnames=names, prompt_names=dpc.tensors, **weights)
    else:
        if not isinstance(config.inner, dict):
            raise ConfigError("adapter_config.json of a 'dpc' adapter has no 'inner' section")
        inner = AdapterConfig.from_dict(config.inner, where="adapter_config.json 'inner'")
        inner_state = {k[len("inner."):]: v for k, v in state.items() if k.startswith("inner.")}
        for n in dpc.tensors:
            if f"dpc.P.{n}" not in state:
                raise CheckpointError(f"DPC checkpoint lacks the backbone prompt tensor 'dpc.P.{n}'")
            inner_state[f"prompt.{n}"] = state[f"dpc.P.{n}"]
        prompted = backbone_method(inner.method).load(target, inner, inner_state, names, options)
        wrapper = DualPromptWrapper(prompted, base_classes, prompt_names=dpc.tensors, **weights)
    wrapper.load_adapter_state_dict(state)
    return wrapper
