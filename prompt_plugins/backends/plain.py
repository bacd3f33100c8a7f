"""Refuse a CLIP whose own layers already run another library's prompts.

Forks of OpenAI's ``clip/model.py`` (IVLP, MaPLe, ViFi-CLIP, PromptSRC) build the prompts into the model:
``VPT_shallow`` parameters in the transformer blocks, a ``VPT`` parameter in the visual tower, block classes
such as ``ResidualAttentionBlock_IVLP`` or ``ResidualAttentionBlock_MaPLe``. The model's own forward then
still runs those prompts, so ``disabled()`` would not be zero-shot CLIP and new prompts would stack on them.
Each backend names the transformer block classes it knows (``Backend.plain_blocks``).
"""
from __future__ import annotations

from torch import nn

from ..errors import UnsupportedModelError
from .base import Backend

FIX = ("Use the plain CLIP weights: load the state dict into clip.model.CLIP (clip.model.build_model(state_dict)), "
       "dropping the prompt keys (names with 'VPT' or 'prompt_learner'); to keep the trained prompts, turn the "
       "checkpoint into an adapter with `prompt-plugins convert CHECKPOINT OUT_DIR` and load it with "
       "pp.from_pretrained(plain_clip, OUT_DIR)")


def _is_block(name: str) -> bool:
    """True for ``...resblocks.<i>``: a transformer block of OpenAI CLIP or open_clip."""
    parts = name.split(".")
    return len(parts) >= 2 and parts[-2] == "resblocks" and parts[-1].isdigit()


def check_plain_clip(model: nn.Module, backend: type[Backend]) -> None:
    """Raise ``UnsupportedModelError`` naming the prompt parameter (``VPT*``) or the unknown block class
    found in ``model``, a model that ``backend`` matched."""
    what = type(model).__name__
    for name, _ in model.named_parameters():
        if name.rsplit(".", 1)[-1].startswith("VPT"):
            raise UnsupportedModelError(
                f"this {what} already injects another library's prompts: it has the parameter {name!r} (IVLP / "
                f"MaPLe / ViFi-CLIP-style prompt tokens), so its own forward is not zero-shot CLIP and "
                f"disabled() could not be either. {FIX}")
    if not backend.plain_blocks:
        return
    for name, module in model.named_modules():
        block = type(module).__name__
        if _is_block(name) and block not in backend.plain_blocks:
            raise UnsupportedModelError(
                f"this {what} has transformer blocks of class {block} at {name!r}, not "
                f"{' or '.join(backend.plain_blocks)}: a prompt-learning fork of {backend.library} (e.g. IVLP, "
                f"MaPLe, ViFi-CLIP) whose blocks may inject their own prompts, so disabled() would not be "
                f"zero-shot CLIP. {FIX}")
