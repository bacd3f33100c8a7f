"""Refuse a CLIP whose own layers already run another library's prompts; accept a fork whose layers don't.

Forks of OpenAI's ``clip/model.py`` (IVLP, MaPLe, ViFi-CLIP, PromptSRC) build the prompts into the model:
``VPT_shallow`` parameters in the transformer blocks, a ``VPT`` parameter in the visual tower, block classes
such as ``ResidualAttentionBlock_IVLP``, ``ResidualAttentionBlock_MaPLe`` or ``ResidualAttentionBlock_ViFi_CLIP``.
Where the model's own forward runs those prompts, ``disabled()`` would not be zero-shot CLIP and new prompts
would stack on them. The same classes with prompts switched off by the fork's config (ViFi-CLIP's fine-tuning
configurations: depth 0 or 1, no ``VPT*`` parameter) compute plain CLIP and are accepted.

The rule, decided by what the model computes rather than by class names:

* a ``VPT*`` parameter outside the transformer blocks (the visual tower's ``VPT``, entered in a forward this
  check does not probe) is refused;
* a block of the backend's own classes (``Backend.plain_blocks``) with no ``VPT*`` parameter is plain;
* any other block is probed (``probe.py``): run once on a random input and compared with the plain block of
  its own weights. Equal: plain. Otherwise (other values, other inputs, an exception) it is refused, naming
  its ``VPT*`` parameter if it has one, else its class. One probe per kind of block (class, tower,
  parameter names and shapes, plain attributes such as ``add_prompt``), so a model costs a few probes.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..errors import UnsupportedModelError
from .base import Backend
from .probe import BlockSite, Verdict, probe_block

FIX = ("Use the plain CLIP weights: load the state dict into clip.model.CLIP (clip.model.build_model(state_dict)), "
       "dropping the prompt keys (names with 'VPT' or 'prompt_learner'); to keep the trained prompts, turn the "
       "checkpoint into an adapter with `prompt-plugins convert CHECKPOINT OUT_DIR` and load it with "
       "pp.from_pretrained(plain_clip, OUT_DIR)")

_REASONS = {
    Verdict.DIFFERENT: "on a probe input its forward is not the plain block: it changes the values (injected "
                       "prompt tokens), takes other inputs (MaPLe's [x, prompts, counter]) or fails",
    Verdict.UNKNOWN: "its forward could not be checked against the plain block in its dtype",
}

#: attribute types that describe how a block was configured (``add_prompt``, ``text_layer``, ``n_ctx_text``)
_FLAG_TYPES = (bool, int, float, str, type(None))


def _is_block(name: str) -> bool:
    """True for ``...resblocks.<i>``: a transformer block of OpenAI CLIP or open_clip."""
    parts = name.split(".")
    return len(parts) >= 2 and parts[-2] == "resblocks" and parts[-1].isdigit()


def _is_prompt(name: str) -> bool:
    return name.rsplit(".", 1)[-1].startswith("VPT")


def check_plain_clip(model: nn.Module, backend: type[Backend]) -> None:
    """Raise ``UnsupportedModelError`` naming the prompt parameter (``VPT*``) or the block class through which
    ``model``, a model that ``backend`` matched, runs prompts of its own; return if it computes plain CLIP."""
    what = type(model).__name__
    blocks = {name: m for name, m in model.named_modules() if _is_block(name)} if backend.plain_blocks else {}
    for name, _ in model.named_parameters():
        if _is_prompt(name) and not any(name.startswith(f"{b}.") for b in blocks):
            raise _prompt_error(what, name)
    verdicts: dict[tuple, Verdict] = {}
    for name, block in blocks.items():
        prompts = [f"{name}.{p}" for p, _ in block.named_parameters() if _is_prompt(p)]
        if type(block).__name__ in backend.plain_blocks and not prompts:
            continue
        site = _site(model, name, backend)
        kind = _kind(block, site)
        if kind not in verdicts:
            verdicts[kind] = probe_block(block, site)
        if verdicts[kind] is Verdict.PLAIN:
            continue
        if prompts:
            raise _prompt_error(what, prompts[0])
        raise UnsupportedModelError(
            f"this {what} has transformer blocks of class {type(block).__name__} at {name!r}, not "
            f"{' or '.join(backend.plain_blocks)}: a prompt-learning fork of {backend.library} (e.g. IVLP, "
            f"MaPLe, ViFi-CLIP) whose blocks may inject their own prompts ({_REASONS[verdicts[kind]]}), so "
            f"disabled() would not be zero-shot CLIP. {FIX}")


def _prompt_error(what: str, name: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"this {what} already injects another library's prompts: it has the parameter {name!r} (IVLP / "
        f"MaPLe / ViFi-CLIP-style prompt tokens), so its own forward is not zero-shot CLIP and "
        f"disabled() could not be either. {FIX}")


def _site(model: nn.Module, name: str, backend: type[Backend]) -> BlockSite:
    """How the block at ``name`` (``<tower>.transformer.resblocks.<i>``) is called: the layout of its
    ``Transformer`` (``batch_first``, else the backend's default), causal unless it is in ``model.visual``,
    the tower's ``positional_embedding`` length."""
    path = name.split(".")[:-2]
    transformer = model.get_submodule(".".join(path))
    tower = model.get_submodule(".".join(path[:-1])) if path else model
    batch_first = getattr(transformer, "batch_first", None)
    layout = backend.default_block_layout if batch_first is None else ("NLD" if batch_first else "LND")
    positions = getattr(tower, "positional_embedding", None)
    length = positions.shape[0] if isinstance(positions, Tensor) and positions.dim() == 2 else 16
    return BlockSite(layout=layout, causal=tower is not getattr(model, "visual", None), length=length)


def _kind(block: nn.Module, site: BlockSite) -> tuple:
    """What decides a block's behaviour: its class, where it runs, its parameters and buffers, and its
    configuration flags (IVLP's first block has no ``VPT_shallow`` and ``add_prompt=False``; the rest do)."""
    params = tuple((n, tuple(p.shape), p.dtype) for n, p in block.named_parameters())
    buffers = tuple((n, tuple(b.shape), b.dtype) for n, b in block.named_buffers())
    flags = tuple(sorted((k, v) for k, v in vars(block).items()
                         if not k.startswith("_") and k != "training" and isinstance(v, _FLAG_TYPES)))
    return type(block), site, params, buffers, flags
