"""PromptKD test material: tiny OpenAI CLIPs of chosen widths (student and teacher differ), reference forwards written
from the spec (backbones.md §0, §5; not from the released code), and released checkpoints written the way
``trainers/promptkd.py`` (student) and ``JREion/DPC`` ``trainers/sple_promptkd.py`` (PromptKD+DPC) save them."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from dassl_files import dassl_optim, save_checkpoint
from tiny_models import IMAGE_SIZE

NAMES = ["red circle", "blue square", "green triangle", "yellow star", "purple ring", "orange cube", "white cone"]


def make_clip(width: int = 64, embed_dim: int = 40, seed: int = 0, layers: int = 3, fp16_values: bool = True):
    """An OpenAI ``clip.model.CLIP`` in fp32 whose weights are fp16 values (so a released fp16 copy of its towers
    holds the same numbers), ``embed_dim`` its image/text embedding width."""
    from clip.model import CLIP, convert_weights

    torch.manual_seed(seed)
    model = CLIP(embed_dim, IMAGE_SIZE, layers, width, 8, 77, 49408, width, max(1, width // 32), layers).eval()
    if fp16_values:
        convert_weights(model)
        model.float()
    return model


# ------------------------------------------------------------------------------------------------ reference
def ref_image(clip, x, vpt=None, deep=None):
    """Unnormalised image embeddings with IVLP visual prompts (spec §0): ``vpt`` appended after the positional
    embedding, before ``ln_pre``; block i in 1..len(deep) replaces the last n tokens with ``deep[i-1]``."""
    v = clip.visual
    h = v.conv1(x).flatten(2).permute(0, 2, 1)
    h = torch.cat([v.class_embedding + torch.zeros(h.shape[0], 1, h.shape[-1]), h], 1) + v.positional_embedding
    n = 0 if vpt is None else vpt.shape[0]
    if n:
        h = torch.cat([h, vpt.expand(h.shape[0], -1, -1)], 1)
    h = v.ln_pre(h).permute(1, 0, 2)
    for i, block in enumerate(v.transformer.resblocks):
        if deep is not None and 1 <= i <= deep.shape[0]:
            h = torch.cat([h[:-n], deep[i - 1][:, None].expand(-1, h.shape[1], -1)], 0)
        h = block(h)
    return v.ln_post(h.permute(1, 0, 2)[:, 0]) @ v.proj


def ref_text(clip, names, ctx, deep=None):
    """L2-normalised text features of ``[SOS] ctx name . [EOS]`` (``ctx`` replacing the n placeholder tokens), deep
    prompts replacing positions 1..n before blocks 1..len(deep); EOT = argmax of the ids."""
    import clip as openai_clip

    n = ctx.shape[0]
    ids = openai_clip.tokenize([" ".join(["X"] * n) + " " + c + "." for c in names])
    h = clip.token_embedding(ids)
    h = torch.cat([h[:, :1], ctx.expand(len(names), -1, -1), h[:, 1 + n:]], 1) + clip.positional_embedding
    h = h.permute(1, 0, 2)
    for i, block in enumerate(clip.transformer.resblocks):
        if deep is not None and 1 <= i <= deep.shape[0]:
            h = torch.cat([h[:1], deep[i - 1][:, None].expand(-1, h.shape[1], -1), h[1 + n:]], 0)
        h = block(h)
    h = clip.ln_final(h.permute(1, 0, 2))
    return F.normalize(h[torch.arange(len(names)), ids.argmax(-1)] @ clip.text_projection, dim=-1)


def ref_projector(f, p, stats=None):
    """Conv1x1 -> BatchNorm (eval: running statistics ``stats`` or ``p``'s) -> ReLU -> Conv1x1 as matrix products."""
    g = lambda k: p[f"VPT_image_trans.conv1.{k}"].float()  # noqa: E731
    mean, var = stats if stats is not None else (g("1.running_mean"), g("1.running_var"))
    h = f @ g("0.weight")[:, :, 0, 0].t() + g("0.bias")
    h = (h - mean) / torch.sqrt(var + 1e-5) * g("1.weight") + g("1.bias")
    return h.clamp_min(0) @ g("3.weight")[:, :, 0, 0].t() + g("3.bias")


def ref_student_logits(student_clip, p, x, text, stats=None):
    """100 · f̂ · t̂ᵀ: the released student's logits (student logit scale) against teacher features ``text``."""
    keys = sorted((k for k in p if k.endswith(".VPT_shallow") and k.startswith("image_encoder.")),
                  key=lambda k: int(k.split(".")[3]))
    deep = torch.stack([p[k].float() for k in keys]) if keys else None
    f = ref_image(student_clip, x, p["image_encoder.VPT"].float(), deep)
    f = F.normalize(ref_projector(f, p, stats), dim=-1)
    return student_clip.logit_scale.exp() * f @ text.t()


# ------------------------------------------------------------------------------------------------ released files
def projector(in_dim: int, out_dim: int, seed: int, half: bool = True) -> nn.Sequential:
    """``Feature_Trans_Module_two_layer.conv1`` as the trainer builds it, with BatchNorm statistics moved by a few
    training-mode batches (as training leaves them); the convs then go fp16 (``convert_weights``)."""
    torch.manual_seed(seed)
    conv = nn.Sequential(nn.Conv2d(in_dim, out_dim, 1), nn.BatchNorm2d(out_dim), nn.ReLU(inplace=True),
                         nn.Conv2d(out_dim, out_dim, 1)).train()
    with torch.no_grad():
        for _ in range(3):
            conv(torch.randn(6, in_dim, 1, 1) * 2 + 0.5)
        conv[1].weight.uniform_(0.5, 1.5)
        conv[1].bias.normal_(0, 0.2)
    return half_convs(conv) if half else conv.eval()


def half_convs(conv: nn.Sequential) -> nn.Sequential:
    """``convert_weights`` on the projector: its convs to fp16, the BatchNorm stays fp32."""
    for i in (0, 3):
        conv[i].half()
    return conv.eval()


def student_state(clip, vpt, deep, proj: nn.Sequential, prefix: str = "") -> dict:
    """The PromptKD student ``CustomCLIP.state_dict()``: the visual tower as ``build_model`` leaves it (``convert_weights``:
    fp16 convs, linears, attention and ``proj``; fp32 norms and embeddings), fp32 prompts, the projector, logit_scale."""
    state = {f"image_encoder.{k}": v for k, v in _released_dtypes(clip.visual).state_dict().items()}
    state["image_encoder.VPT"] = vpt.float().clone()
    for i in range(deep.shape[0]):
        state[f"image_encoder.transformer.resblocks.{i + 1}.VPT_shallow"] = deep[i].float().clone()
    state.update({f"VPT_image_trans.conv1.{k}": v.clone() for k, v in proj.state_dict().items()})
    state["logit_scale"] = clip.logit_scale.detach().clone()
    return {prefix + k: v for k, v in state.items()}


def dpc_state(student_clip, vpt, deep, proj, teacher_clip, ctx, text_deep, n_base: int) -> dict:
    """``CustomSPLECLIP.state_dict()`` of a StackSPLE_PromptKD run on ``n_base`` base classes: the student's parts,
    ``prompt_learner.ctx`` (fp16) and its teacher text tower (``prompt_learner.text_encoder.*``, with deep prompts),
    the same tower again under ``text_encoder.*``, the student's whole CLIP under ``clip_model.*``, token buffers."""
    state = student_state(student_clip, vpt, deep, proj)
    tower = {k: v for k, v in _released_dtypes(teacher_clip).state_dict().items()
             if k.startswith(("transformer.", "ln_final.")) or k in ("positional_embedding", "text_projection")}
    for i in range(text_deep.shape[0]):
        tower[f"transformer.resblocks.{i + 1}.VPT_shallow"] = text_deep[i].half()
    for prefix in ("prompt_learner.text_encoder.", "text_encoder."):
        state.update({prefix + k: v.clone() for k, v in tower.items()})
    state["prompt_learner.ctx"] = ctx.half()
    width, half = teacher_clip.ln_final.weight.shape[0], math.ceil(n_base / 2)
    state["prompt_learner.token_prefix"] = torch.zeros(half, 1, width, dtype=torch.half)
    state["prompt_learner.token_suffix"] = torch.zeros(half, 72, width, dtype=torch.half)
    state["prompt_learner.token_prefix2"] = torch.zeros(n_base - half, 1, width, dtype=torch.half)
    state["prompt_learner.token_suffix2"] = torch.zeros(n_base - half, 72, width, dtype=torch.half)
    state.update({f"clip_model.{k}": v for k, v in _released_dtypes(student_clip).state_dict().items()})
    return state


def _released_dtypes(module: nn.Module) -> nn.Module:
    from clip.model import convert_weights

    module = copy.deepcopy(module)
    convert_weights(module)
    return module


def save_run(folder, state: dict, epoch: int = 20, best: bool = True):
    """A Dassl run folder ``folder/VLPromptLearner/model-best.pth.tar`` (or ``model.pth.tar-<epoch>``), with the
    SGD / warm-up scheduler state of the trainable tensors."""
    params = [nn.Parameter(v.float()) for k, v in state.items() if "VPT" in k or k == "prompt_learner.ctx"]
    opt, sched = dassl_optim(params, lr=0.005, max_epoch=epoch)
    name = "model-best.pth.tar" if best else f"model.pth.tar-{epoch}"
    return save_checkpoint(folder / "VLPromptLearner" / name, state, opt, sched, epoch)
