"""Contrastive pretraining of a tiny ``clip.model.CLIP`` on the world, cached per config."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import CheckpointError
from .cache import cache_dir, read_cached, write_cached
from .classes import World
from .config import WorldConfig
from .data import pretrain_batch


def build_clip(cfg: WorldConfig) -> nn.Module:
    """A fresh tiny ``clip.model.CLIP`` (ViT) with the logit scale at log(100), frozen."""
    from ...backends.openai_clip import import_clip

    CLIP = import_clip().model.CLIP

    heads = max(1, cfg.width // 32)
    model = CLIP(cfg.embed_dim, cfg.image_size, cfg.layers, cfg.width, cfg.patch_size, cfg.context_length,
                 49408, cfg.width, heads, cfg.layers)
    with torch.no_grad():
        model.logit_scale.fill_(float(np.log(100.0)))
    model.logit_scale.requires_grad_(False)
    return model


def _tokenize(captions: list[str], context_length: int) -> torch.Tensor:
    from ...backends.openai_clip import import_clip

    return import_clip().tokenize(captions, context_length=context_length)


def encode_captions(model: nn.Module, tokens: Tensor) -> Tensor:
    """``model.encode_text(tokens)`` computed only up to the batch's last EOT (exact under the causal
    mask; captions are ~10 of the 32 context tokens, so pretraining's text side costs a third)."""
    length = int(tokens.argmax(-1).max()) + 1
    x = model.token_embedding(tokens[:, :length]) + model.positional_embedding[:length]
    mask = model.build_attention_mask()[:length, :length].to(x.device)
    x = x.permute(1, 0, 2)  # (L, N, D), as clip's Transformer
    for block in model.transformer.resblocks:
        h = block.ln_1(x)
        x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        x = x + block.mlp(block.ln_2(x))
    x = model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(len(x), device=x.device), tokens[:, :length].argmax(-1)] @ model.text_projection


def pretrain(cfg: WorldConfig, *, progress: bool = True, device: str = "cpu") -> nn.Module:
    """Train ``build_clip(cfg)`` contrastively for ``cfg.pretrain_steps`` batches; returns it in eval mode.

    Text features are computed once per unique caption in a batch; image->text targets are
    spread over every caption of the sample's class, text->image targets over its images."""
    from tqdm.auto import tqdm

    gen_state = torch.random.get_rng_state()
    torch.manual_seed(cfg.seed)  # clip's CLIP initialises from the global generator
    model = build_clip(cfg)
    torch.random.set_rng_state(gen_state)
    model.to(device)
    rng = np.random.default_rng([cfg.seed, 0])
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if p.requires_grad and not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=cfg.pretrain_lr, betas=(0.9, 0.98))
    warmup = max(1, cfg.pretrain_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + np.cos(np.pi * min(1.0, s / cfg.pretrain_steps))))
    scale = model.logit_scale.exp().item()
    model.train()
    names = World(cfg).pretrain_classnames
    bar = tqdm(range(cfg.pretrain_steps), desc="pretraining tiny CLIP", disable=not progress, unit="step")
    for _ in bar:
        images, labels, captions = pretrain_batch(cfg, rng)
        unique = sorted(set(captions))
        images, labels = images.to(device), labels.to(device)
        cap_index = torch.tensor([unique.index(c) for c in captions], device=device)
        cap_label = torch.tensor([_class_of(c, names) for c in unique], device=device)
        img = F.normalize(model.encode_image(images), dim=-1)
        txt = F.normalize(encode_captions(model, _tokenize(unique, cfg.context_length).to(device)), dim=-1)
        logits = scale * img @ txt.t()  # (B, U)
        pos = (labels[:, None] == cap_label[None, :]).float()
        loss_i = -(F.log_softmax(logits, 1) * pos / pos.sum(1, keepdim=True)).sum(1).mean()
        pos_t = (cap_index[None, :] == torch.arange(len(unique), device=device)[:, None]).float()  # (U, B): images of the caption
        pos_t = ((cap_label[:, None] == labels[None, :]).float() + pos_t).clamp(max=1)
        loss_t = -(F.log_softmax(logits.t(), 1) * pos_t / pos_t.sum(1, keepdim=True)).sum(1).mean()
        loss = (loss_i + loss_t) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.cpu().eval()


def _class_of(caption: str, names: list[str]) -> int:
    body = caption.rstrip(".")
    for i, name in enumerate(names):
        if body.endswith(" " + name) or body == name:
            return i
    raise ValueError(f"caption {caption!r} names no class")  # pragma: no cover - captions come from names


def checkpoint_path(cfg: WorldConfig) -> Path:
    return cache_dir() / f"world-{cfg.key()}.pt"


def load_or_pretrain(cfg: WorldConfig, *, progress: bool = True, log=print, device: str = "cpu") -> tuple[nn.Module, bool, float]:
    """(model, loaded_from_cache, seconds). Pretrains and caches on the first call for a config."""
    path = checkpoint_path(cfg)
    start = time.perf_counter()
    if path.is_file():
        model = build_clip(cfg)
        try:
            model.load_state_dict(read_cached(path, "world checkpoint"))
        except Exception as exc:  # not a state dict of this CLIP
            raise CheckpointError(f"cached world checkpoint {path} is unreadable ({exc}); delete it to retrain") from None
        model.logit_scale.requires_grad_(False)
        log(f"loaded cached tiny CLIP {path}")
        return model.eval(), True, time.perf_counter() - start
    log(f"pretraining a tiny CLIP on the shapes world ({cfg.pretrain_steps} steps of {cfg.pretrain_batch}); "
        f"cached afterwards in {path.parent}")
    model = pretrain(cfg, progress=progress, device=device)
    if write_cached(path, model.state_dict(), log):
        path.with_suffix(".json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    return model, False, time.perf_counter() - start
