"""Released MaPLe and IVLP checkpoints written the way their Dassl trainers write them (spec backbones.md §0-§2): the
whole ``CustomCLIP`` state dict (prompt learner with its ``token_prefix`` / ``token_suffix`` buffers, the frozen towers
under ``image_encoder.*`` / ``text_encoder.*``, ``logit_scale``), a CLIP converted to fp16 as ``PREC: fp16`` leaves it
(ctx and ``proj`` fp16, deep prompts and couplers fp32), a real SGD step and the Dassl scheduler pickle."""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from dassl_files import dassl_optim, save_checkpoint
from tiny_models import make_openai

NAMES = ["red circle", "blue square", "green triangle"]


def fp16_valued(model: nn.Module) -> nn.Module:
    """``model`` (fp32) with every tensor rounded to an fp16 value: the fp32 twin of an fp16 checkpoint's CLIP."""
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                t.copy_(t.half().float())
    return model


def clip_pair(seed: int = 0, width: int = 64, vision_width: int = 96) -> tuple[nn.Module, nn.Module]:
    """(the user's fp32 CLIP, the fp16 CLIP a released trainer ran on): the same weights."""
    from clip.model import convert_weights

    user = fp16_valued(make_openai(seed, width=width, vision_width=vision_width))
    released = copy.deepcopy(user)
    convert_weights(released)
    return user, released


def tokenized_prompts(n_ctx: int, ctx_init: str | None, classnames: list[str]) -> torch.Tensor:
    """The trainer's prompt strings: the whole ctx_init (n_ctx <= 4) or n_ctx "X", then the name and "."."""
    import clip

    prefix = ctx_init if ctx_init and n_ctx <= 4 else " ".join(["X"] * n_ctx)
    return torch.cat([clip.tokenize(f"{prefix} {name}.") for name in classnames])


def _context(clip_model, n_ctx: int, ctx_init: str | None) -> torch.Tensor:
    import clip

    if ctx_init and n_ctx <= 4:
        with torch.no_grad():
            return clip_model.token_embedding(clip.tokenize(ctx_init))[0, 1:1 + n_ctx].type(clip_model.dtype)
    return torch.empty(n_ctx, clip_model.ln_final.weight.shape[0], dtype=clip_model.dtype).normal_(0, 0.02)


class _TextEncoder(nn.Module):
    def __init__(self, clip_model):
        super().__init__()
        self.transformer, self.positional_embedding = clip_model.transformer, clip_model.positional_embedding
        self.ln_final, self.text_projection = clip_model.ln_final, clip_model.text_projection


class _Learner(nn.Module):
    """The prompt learner's tensors and buffers, named as the trainers name them."""

    def __init__(self, clip_model, classnames: list[str], n_ctx: int, ctx_init: str | None, maple_depth: int | None):
        super().__init__()
        dt, dv = clip_model.ln_final.weight.shape[0], clip_model.visual.conv1.weight.shape[0]
        self.ctx = nn.Parameter(_context(clip_model, n_ctx, ctx_init))
        if maple_depth is not None:
            self.proj = nn.Linear(dt, dv).half()
            self.compound_prompts_text = nn.ParameterList(
                [nn.Parameter(torch.empty(n_ctx, dt).normal_(0, 0.02)) for _ in range(maple_depth - 1)])
            one = nn.Linear(dt, dv)
            self.compound_prompt_projections = nn.ModuleList([copy.deepcopy(one) for _ in range(maple_depth - 1)])
        with torch.no_grad():
            embedding = clip_model.token_embedding(tokenized_prompts(n_ctx, ctx_init, classnames)).type(clip_model.dtype)
        self.register_buffer("token_prefix", embedding[:, :1, :])
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:, :])


class CustomCLIP(nn.Module):
    """MaPLe's (``maple_depth``) or IVLP's model: prompt learner, the CLIP's towers, its logit scale; IVLP's visual
    and deep prompts sit in the towers' blocks (``VPT``, ``VPT_shallow``), added by ``ivlp_prompts``."""

    def __init__(self, clip_model, classnames: list[str], n_ctx: int = 2, ctx_init: str | None = "a photo of a",
                 maple_depth: int | None = 3):
        super().__init__()
        self.prompt_learner = _Learner(clip_model, classnames, n_ctx, ctx_init, maple_depth)
        self.image_encoder = clip_model.visual
        self.text_encoder = _TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale


def ivlp_prompts(custom: CustomCLIP, n_text: int, text_depth: int, n_visual: int, visual_depth: int) -> None:
    """IVLP's prompts in the towers: ``image_encoder.VPT`` and ``VPT_shallow`` of blocks 1 .. depth-1 (fp32)."""
    dt = custom.text_encoder.ln_final.weight.shape[0]
    dv = custom.image_encoder.conv1.weight.shape[0]
    if visual_depth:
        custom.image_encoder.VPT = nn.Parameter(torch.empty(n_visual, dv).normal_(0, 0.02))
    for blocks, n, d, depth in ((custom.text_encoder.transformer.resblocks, n_text, dt, text_depth),
                                (custom.image_encoder.transformer.resblocks, n_visual, dv, visual_depth)):
        for i in range(1, depth):
            blocks[i].VPT_shallow = nn.Parameter(torch.empty(n, d).normal_(0, 0.02))


def train_and_save(custom: CustomCLIP, path: Path, *, epoch: int = 5, module_prefix: bool = False,
                   scale: float = 0.05) -> Path:
    """One SGD step with random gradients on the trainable tensors (names holding "prompt_learner" or "VPT", as the
    trainers freeze), then ``save_checkpoint`` of the full state dict."""
    trainable = [p for n, p in custom.named_parameters() if "prompt_learner" in n or "VPT" in n]
    opt, sched = dassl_optim(trainable, lr=1.0)
    g = torch.Generator().manual_seed(7)
    for p in trainable:
        p.grad = (scale * torch.randn(p.shape, generator=g)).to(p.dtype)
    opt.step()
    sched.step()
    state = custom.state_dict()
    if module_prefix:
        state = {f"module.{k}": v for k, v in state.items()}
    return save_checkpoint(path, state, opt, sched, epoch)


def perturbed_towers(clip_model: nn.Module, seed: int = 11, scale: float = 0.05) -> nn.Module:
    """A copy whose tower weights (not the token embedding, which the files do not hold) moved: another model's."""
    other = copy.deepcopy(clip_model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in other.named_parameters():
            if name != "token_embedding.weight" and p.is_floating_point():
                p.add_((scale * torch.randn(p.shape, generator=g)).to(p.dtype))
    return other
