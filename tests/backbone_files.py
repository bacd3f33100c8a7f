"""PromptSRC and KgCoOp checkpoints written the way their trainers write them, on a tiny OpenAI CLIP, and the
reference forward of spec backbones.md §0 / §2 (IVLP prompts on a stock ``clip.model.CLIP``), written from the
spec here so the importers' adapters can be compared with it.

PromptSRC (``VLPromptLearner/model.pth.tar-N``): the whole ``CustomCLIP`` state dict under PREC fp16 (``build_model``
casts Conv/Linear/attention weights and ``proj`` / ``text_projection`` to fp16; ``ctx`` and the token buffers take
the CLIP dtype; deep and visual prompts stay fp32), ``prompt_learner.ZS_image_encoder.*`` (the second, unprompted
fp16 visual tower), and every tensor the Gaussian aggregate of the epochs, computed as the release computes it:
each tensor times g_e and summed in its own dtype. KgCoOp (``prompt_learner/model.pth.tar-N``): the prompt learner
alone, without prefix, with the unused ``bias_vectors`` and ``meta_net`` it saves."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

import dassl_files

TEXT_TOP = ("positional_embedding", "text_projection")


def fp16_pristine(model):
    """``model`` with every float weight rounded to fp16 values (kept fp32): what loading OpenAI's fp16 release
    into an fp32 CLIP gives, the CLIP the released prompts were trained on."""
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                t.copy_(t.half().float())
    return model


def released_dtypes(model) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` in the dtypes ``clip.build_model`` leaves (``convert_weights``)."""
    from clip.model import convert_weights

    half = copy.deepcopy(model)
    convert_weights(half)
    return {k: v.detach().clone() for k, v in half.state_dict().items()}


def prompt_buffers(model, classnames, n_ctx: int, ctx_init: str | None):
    """token_prefix / token_suffix as the prompt learner builds them (the released context-init rule)."""
    import clip

    prefix = ctx_init if ctx_init and n_ctx <= 4 else " ".join(["X"] * n_ctx)
    ids = clip.tokenize([f"{prefix} {c}." for c in classnames])
    with torch.no_grad():
        emb = model.token_embedding(ids).half()
    return emb[:, :1], emb[:, 1 + n_ctx:], ids


def random_prompts(model, n_ctx=4, depth=3, n_visual=4, visual_depth=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    dt, dv = model.ln_final.weight.shape[0], model.visual.conv1.weight.shape[0]
    return {"ctx": 0.02 * torch.randn(n_ctx, dt, generator=g),
            "text_deep": 0.02 * torch.randn(depth - 1, n_ctx, dt, generator=g),
            "visual": 0.02 * torch.randn(n_visual, dv, generator=g),
            "visual_deep": 0.02 * torch.randn(visual_depth - 1, n_visual, dv, generator=g)}


def promptsrc_state(model, classnames, prompts, ctx_init="a photo of a") -> dict[str, torch.Tensor]:
    """The ``CustomCLIP.state_dict()`` of a PromptSRC run on ``model`` (before aggregation)."""
    towers = released_dtypes(model)
    n = prompts["ctx"].shape[0]
    prefix, suffix, _ = prompt_buffers(model, classnames, n, ctx_init)
    state = {"prompt_learner.ctx": prompts["ctx"].half()}
    for k, v in towers.items():
        if k.startswith("visual."):
            state["prompt_learner.ZS_image_encoder." + k[len("visual."):]] = v.clone()
    state["prompt_learner.token_prefix"], state["prompt_learner.token_suffix"] = prefix, suffix
    state["image_encoder.VPT"] = prompts["visual"].float()
    for k, v in towers.items():
        if k.startswith("visual."):
            state["image_encoder." + k[len("visual."):]] = v.clone()
    for i, p in enumerate(prompts["visual_deep"], start=1):
        state[f"image_encoder.transformer.resblocks.{i}.VPT_shallow"] = p.float()
    for k, v in towers.items():
        if k.startswith(("transformer.", "ln_final.")) or k in TEXT_TOP:
            state["text_encoder." + k] = v.clone()
    for i, p in enumerate(prompts["text_deep"], start=1):
        state[f"text_encoder.transformer.resblocks.{i}.VPT_shallow"] = p.float()
    state["logit_scale"] = towers["logit_scale"]
    return state


def gpa_as_released(state: dict[str, torch.Tensor], weights) -> dict[str, torch.Tensor]:
    """The release's aggregation of an unchanging state dict: every tensor times g_e, summed in its own dtype
    (so fp16 tensors come back perturbed)."""
    out = {}
    for k, v in state.items():
        acc = None
        for g in weights:
            term = v * float(g)
            acc = term if acc is None else acc + term
        out[k] = acc
    return out


def save_dassl(path, state, epoch, *, val_result=True):
    """A Dassl ``save_checkpoint`` file with a real SGD state and the warm-up scheduler over a few prompt tensors."""
    params = [torch.nn.Parameter(v.detach().float().clone()) for k, v in state.items() if "ctx" in k or "VPT" in k]
    opt, sched = dassl_files.dassl_optim(params, max_epoch=epoch)
    sum(p.sum() for p in params).backward()
    opt.step()
    sched.step()
    return dassl_files.save_checkpoint(path, state, opt, sched, epoch, val_result=val_result)


def tower_copy(model, state: dict[str, torch.Tensor]):
    """A copy of ``model`` running the released state's own towers (the reference for ``keep_towers``)."""
    from prompt_plugins.importers.dassl import tower_tensors

    other = copy.deepcopy(model)
    own = other.state_dict()
    with torch.no_grad():
        for k, v in tower_tensors(state).items():
            own[k].copy_(v.float())
    return other


# ------------------------------------------------------------------------------------------ the reference forward
def reference_text(model, classnames, prompts, ctx_init="a photo of a"):
    """(C, E) IVLP text features: [SOS | ctx | suffix] + pos-emb; before block i (1 <= i < depth) positions 1..n_ctx
    are replaced by layer i's prompt; EOT (argmax id) row -> ln_final -> text_projection."""
    ctx = prompts["ctx"].float()
    n = ctx.shape[0]
    _, _, ids = prompt_buffers(model, classnames, n, ctx_init)
    with torch.no_grad():
        emb = model.token_embedding(ids).half().float()  # the released buffers, fp16 values
    x = torch.cat([emb[:, :1], ctx.expand(len(classnames), -1, -1), emb[:, 1 + n:]], dim=1)
    x = (x + model.positional_embedding.float()).permute(1, 0, 2)
    deep = prompts.get("text_deep")
    for i, block in enumerate(model.transformer.resblocks):
        if deep is not None and 1 <= i <= deep.shape[0]:
            x = torch.cat([x[:1], deep[i - 1].float()[:, None].expand(-1, x.shape[1], -1), x[1 + n:]])
        x = block(x)
    x = model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(len(classnames)), ids.argmax(-1)] @ model.text_projection


def reference_image(model, images, prompts):
    """(B, E) IVLP image features: visual prompts appended after [CLS, patches] + pos-emb, before ln_pre; before
    block i (1 <= i < depth) the last n_v tokens are replaced by layer i's prompt; ln_post(token 0) @ proj."""
    v = model.visual
    x = v.conv1(images).flatten(2).permute(0, 2, 1)
    x = torch.cat([v.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1]), x], dim=1) + v.positional_embedding
    vis = prompts.get("visual")
    if vis is not None:
        x = torch.cat([x, vis.float()[None].expand(x.shape[0], -1, -1)], dim=1)
    x = v.ln_pre(x).permute(1, 0, 2)
    deep = prompts.get("visual_deep")
    for i, block in enumerate(v.transformer.resblocks):
        if deep is not None and 1 <= i <= deep.shape[0]:
            x = torch.cat([x[:-deep.shape[1]], deep[i - 1].float()[:, None].expand(-1, x.shape[1], -1)])
        x = block(x)
    return v.ln_post(x.permute(1, 0, 2)[:, 0]) @ v.proj


def reference_logits(model, classnames, images, prompts, ctx_init="a photo of a"):
    with torch.no_grad():
        text = F.normalize(reference_text(model, classnames, prompts, ctx_init), dim=-1)
        image = F.normalize(reference_image(model, images, prompts), dim=-1)
        return model.logit_scale.exp() * image @ text.t()


def file_prompts(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The prompt tensors of a released IVLP/PromptSRC state, stacked per layer."""
    def layers(pattern):
        found = sorted(int(k.split(".")[-2]) for k in state if k.startswith(pattern) and k.endswith("VPT_shallow"))
        return torch.stack([state[f"{pattern}{i}.VPT_shallow"].float() for i in found]) if found else None

    return {"ctx": state["prompt_learner.ctx"].float(), "visual": state["image_encoder.VPT"].float(),
            "text_deep": layers("text_encoder.transformer.resblocks."),
            "visual_deep": layers("image_encoder.transformer.resblocks.")}


def kgcoop_state(model, classnames, ctx, *, fp16=True):
    """KgCoOp's ``prompt_learner.state_dict()``: ctx, the token buffers, and the unused bias_vectors / meta_net."""
    prefix, suffix, _ = prompt_buffers(model, classnames, ctx.shape[-2], "a photo of a")
    g = torch.Generator().manual_seed(7)
    width = ctx.shape[-1]
    dtype = torch.float16 if fp16 else torch.float32
    return {"ctx": ctx.to(dtype), "bias_vectors": (0.02 * torch.randn(1, width, generator=g)).to(dtype),
            "token_prefix": prefix.to(dtype), "token_suffix": suffix.to(dtype),
            "meta_net.linear1.weight": torch.randn(width, width, generator=g).to(dtype),
            "meta_net.linear1.bias": torch.randn(width, generator=g).to(dtype)}
