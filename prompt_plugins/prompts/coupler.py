"""GA2-CLIP hard-soft coupling: a frozen hard prompt coupled channel-wise with soft tokens.

    C = Dropout(act([H ‖ S] Wᵀ + b))        H, S: (n, Dt);  W: (Dt, 2·Dt);  C: (n, Dt)

C replaces the n text context tokens at layer 0 (as released) or, with ``couple="all"``, the
context of every deep text layer too (the same mapping, the layer's own soft tokens). Deep
text/visual prompts are plain IVLP prompts (a ``SoftPrompt`` inside), so GA2 = IVLP + coupler.
Unlike the released code, the hard prompt is a persistent buffer: it is saved with the adapter.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from .base import PromptModule, Prompts
from .soft import SoftPrompt, _check_int

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "identity": nn.Identity, "tanh": nn.Tanh}
#: keys tried, in order, when a hard-prompt file holds several tensors
HARD_PROMPT_KEYS = ("hard_prompt", "prompt_learner.ctx_VPT", "prompt_learner.ctx", "prompt.ctx", "prompt.soft.ctx",
                    "ctx")


def _flatten_checkpoint(obj: Any) -> dict[str, Tensor]:
    """A foreign checkpoint's tensors: unwrap ``model_state_dict``/``model``/``state_dict``, strip ``module.``."""
    if isinstance(obj, Tensor):
        return {"hard_prompt": obj}
    if not isinstance(obj, dict):
        raise CheckpointError(f"a hard-prompt file must hold a tensor or a dict of tensors, got {type(obj).__name__}")
    for key in ("model_state_dict", "model", "state_dict"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items() if isinstance(v, Tensor)}


def load_hard_prompt(source: Tensor | str | os.PathLike, key: str | None = None, *,
                     allow_unsafe: bool = False) -> Tensor:
    """The hard prompt H (n, Dt) as fp32, from a tensor, a ``.safetensors`` file, or a PyTorch checkpoint
    (GA2/IVLP ``model_best.pt``: ``model_state_dict['prompt_learner.ctx_VPT']``; ViFi ``prompt_learner.ctx``).

    ``key`` picks the tensor in a file holding several; otherwise ``HARD_PROMPT_KEYS`` are tried in order.
    """
    if isinstance(source, Tensor):
        hard, where = source, "the given tensor"
    else:
        path = Path(source)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            if not path.is_file():
                raise CheckpointError(f"hard-prompt file {str(path)!r} does not exist")
            tensors = load_file(str(path))
        else:
            from ..importers._video import read_checkpoint  # weights-only; pickled configs read as inert dicts

            tensors = _flatten_checkpoint(read_checkpoint(path, allow_unsafe=allow_unsafe))
        if key is not None:
            if key not in tensors:
                raise CheckpointError(f"{path} has no tensor {key!r}; it holds {sorted(tensors)[:20]}")
            hard = tensors[key]
        elif len(tensors) == 1:
            hard = next(iter(tensors.values()))
        else:
            found = next((k for k in HARD_PROMPT_KEYS if k in tensors), None)
            if found is None:
                raise CheckpointError(f"{path}: no hard prompt among {sorted(tensors)[:20]}; pass hard_prompt_key=...")
            hard = tensors[found]
        where = str(path)
    if hard.dim() != 2:
        raise ConfigError(f"the hard prompt from {where} has shape {tuple(hard.shape)}; expected (n_tokens, width)")
    if not hard.is_floating_point() or not torch.isfinite(hard).all():
        raise ConfigError(f"the hard prompt from {where} must be finite floating-point values")
    return hard.detach().float().cpu()


class HardSoftCoupler(PromptModule):
    """Frozen hard prompt ``hard`` (n, Dt) + soft prompts, coupled by ``proj`` (Linear 2·Dt -> Dt).

    Parameters: ``soft.*`` (a ``SoftPrompt``: ctx (n, Dt), optional text_deep/visual/visual_deep/temporal)
    and ``proj.weight`` (Dt, 2·Dt), ``proj.bias`` (Dt). Buffer: ``hard`` (n, Dt), saved, never trained.

    couple: "first" (layer-0 context only, as released) or "all" (every deep text layer as well).
    activation: "relu" (released), "gelu", "tanh" or "identity"; dropout: 0.5 (released).
    """

    type_name = "hard_soft"

    def __init__(self, text_width: int, hard_prompt: Tensor, n_soft: int | None = None, *, couple: str = "first",
                 activation: str = "relu", dropout: float = 0.5, **soft_options: Any):
        super().__init__()
        if hard_prompt.dim() != 2 or hard_prompt.shape[1] != text_width:
            raise ConfigError(f"hard prompt has shape {tuple(hard_prompt.shape)}; this text tower needs "
                              f"(n_tokens, {text_width}). Was it trained on a different CLIP width?")
        n = hard_prompt.shape[0]
        if n_soft is not None and _check_int("n_soft", n_soft, 1) != n:
            raise ConfigError(f"n_soft={n_soft} but the hard prompt has {n} tokens; channel-wise coupling pairs "
                              "hard and soft tokens one to one, so they must be equal (omit n_soft)")
        if couple not in ("first", "all"):
            raise ConfigError(f"couple={couple!r}: use 'first' (layer 0, as released) or 'all' (every deep layer)")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation={activation!r}: choose from {sorted(ACTIVATIONS)}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"dropout={dropout} must be in [0, 1)")
        for bad in ("ctx_init", "init", "class_specific"):
            if soft_options.get(bad):
                raise ConfigError(f"{bad} is not supported with a hard-soft coupler (the soft tokens start random)")
        self.n_ctx = n
        self.couple, self.activation, self.dropout = couple, activation, float(dropout)
        self.register_buffer("hard", hard_prompt.detach().float().clone(), persistent=True)
        self.soft = SoftPrompt(text_width, n, **soft_options)
        self.proj = nn.Linear(2 * text_width, text_width)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(self.dropout)

    def couple_tokens(self, soft: Tensor) -> Tensor:
        """(..., n, Dt) soft tokens -> (..., n, Dt) coupled tokens ``drop(act(proj([H ‖ S])))``."""
        hard = self.hard.expand(*soft.shape[:-2], *self.hard.shape)
        return self.drop(self.act(self.proj(torch.cat([hard, soft], dim=-1))))

    def forward(self) -> Prompts:
        p = self.soft()
        text_deep = p.text_deep
        if self.couple == "all" and text_deep is not None:
            text_deep = self.couple_tokens(text_deep)
        return Prompts(text=self.couple_tokens(p.text), text_deep=text_deep, visual=p.visual,
                       visual_deep=p.visual_deep, temporal=p.temporal)

    def config(self) -> dict[str, Any]:
        soft = {k: v for k, v in self.soft.config().items() if k not in ("type", "n_ctx", "ctx_init", "class_specific")}
        return {"type": self.type_name, "n_ctx": self.n_ctx, "couple": self.couple, "activation": self.activation,
                "dropout": self.dropout, **soft}

    @classmethod
    def build(cls, backend, tokenizer, *, hard_prompt: Any, hard_prompt_key: str | None = None,
              allow_unsafe: bool = False, n_soft: int | None = None, n_classes: int | None = None,
              **options: Any) -> "HardSoftCoupler":
        hard = load_hard_prompt(hard_prompt, hard_prompt_key, allow_unsafe=allow_unsafe)
        if options.get("n_visual_ctx"):
            backend.check_visual_prompts()
        return cls(backend.text_width, hard, n_soft, max_depth=backend.text_layers,
                   vision_width=backend.vision_width, max_visual_depth=backend.vision_layers or None, **options)

    @classmethod
    def from_config(cls, backend, tokenizer, config: dict[str, Any], n_classes: int) -> "HardSoftCoupler":
        options = {k: v for k, v in config.items() if k not in ("type", "n_ctx")}
        n = _check_int("n_ctx", config.get("n_ctx"), 1)
        # placeholder hard prompt: the saved one is loaded with the other tensors
        return cls.build(backend, tokenizer, hard_prompt=torch.zeros(n, backend.text_width), **options)
