"""``wrap(model, classnames, method="ga2", hard_prompt=...)``: GA2-CLIP = IVLP deep prompts + hard-soft coupler.

Defaults follow the released setting, capped by the model: text and visual depth 9, as many
visual prompt tokens as hard tokens (16 in GA2), dropout 0.5, coupling at layer 0 only.
"""
from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from .backends import resolve
from .base_new import harmonic_mean  # noqa: F401  (re-exported: spec T1 lives with GA2)
from .methods import MODEL_OPTIONS, _tokenizer_for, load_prompted, register_method, split_options
from .model import PromptedCLIP, check_method_options
from .prompts.coupler import HardSoftCoupler, load_hard_prompt

GA2_OPTIONS = ("hard_prompt", "hard_prompt_key", "allow_unsafe", "n_soft", "couple", "activation", "dropout",
               "depth", "n_visual_ctx", "visual_depth", "init_std", "temporal_frames")
#: the released GA2-CLIP depth (both towers)
GA2_DEPTH = 9


def build_ga2(model: nn.Module, classnames: Sequence[str], **options: Any) -> PromptedCLIP:
    """GA2-CLIP prompts on ``model``. ``hard_prompt`` (required): an (n, Dt) tensor, a ``.safetensors`` file,
    or a GA2/IVLP/ViFi checkpoint whose layer-0 context becomes the frozen hard prompt."""
    check_method_options("ga2", options, MODEL_OPTIONS + GA2_OPTIONS)
    model_opts, prompt_opts = split_options(options)
    if prompt_opts.get("hard_prompt") is None:
        from .errors import ConfigError

        raise ConfigError("method='ga2' needs hard_prompt=...: a frozen (n, width) tensor, a .safetensors file, or "
                          "the checkpoint of a prompt run on other data (its layer-0 context is used)")
    backend = resolve(model)
    tokenizer = _tokenizer_for(model, model_opts.get("tokenizer"))
    prompt_opts["hard_prompt"] = load_hard_prompt(prompt_opts["hard_prompt"], prompt_opts.pop("hard_prompt_key", None),
                                                  allow_unsafe=prompt_opts.pop("allow_unsafe", False))
    prompt_opts.setdefault("depth", min(GA2_DEPTH, backend.text_layers))
    if "n_visual_ctx" not in prompt_opts:
        prompt_opts["n_visual_ctx"] = prompt_opts["hard_prompt"].shape[0] if backend.vision_width else 0
        if prompt_opts["n_visual_ctx"] and "visual_depth" not in prompt_opts:
            prompt_opts["visual_depth"] = min(GA2_DEPTH, backend.vision_layers)
    prompt = HardSoftCoupler.build(backend, tokenizer, **prompt_opts)
    model_opts["tokenizer"] = tokenizer
    return PromptedCLIP(model, classnames, prompt, method="ga2", **model_opts)


register_method("ga2", build_ga2, load_prompted, "GA2-CLIP: IVLP deep prompts + frozen hard prompt coupled to soft tokens")


