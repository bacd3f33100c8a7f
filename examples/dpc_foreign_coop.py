"""DPC on a *foreign* CoOp model: the official CoOp ``CustomCLIP`` layout (re-created here with
the same attribute names) on a tiny random ``clip.model.CLIP``, trained as a CoOp backbone, then
wrapped with DPC in three lines and trained with the hard-negative objective. Runs in seconds.

With a real official CoOp model, replace ``build_custom_clip`` with the ``CustomCLIP`` built by
the CoOp trainer (its ``prompt_learner.ctx`` is what DPC dualises).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TextEncoder(nn.Module):
    """CLIP's text tower on prompt embeddings (N, L, D); the EOT token is the argmax id."""

    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.dtype = clip_model.dtype

    def forward(self, prompts, tokenized_prompts):
        x = (prompts + self.positional_embedding.type(self.dtype)).permute(1, 0, 2)
        x = self.transformer(x).permute(1, 0, 2)
        x = self.ln_final(x).type(self.dtype)
        return x[torch.arange(x.shape[0]), tokenized_prompts.argmax(dim=-1)] @ self.text_projection


class PromptLearner(nn.Module):
    """CoOp's unified context: ``ctx`` (n_ctx, D) between the SOS prefix and the "name." suffix."""

    def __init__(self, classnames, clip_model, n_ctx=4):
        super().__init__()
        import clip

        dtype, width = clip_model.dtype, clip_model.ln_final.weight.shape[0]
        self.ctx = nn.Parameter(torch.empty(n_ctx, width, dtype=dtype).normal_(0, 0.02))
        texts = [" ".join(["X"] * n_ctx) + " " + name.replace("_", " ") + "." for name in classnames]
        tokenized = clip.tokenize(texts)
        with torch.no_grad():
            embedding = clip_model.token_embedding(tokenized).type(dtype)
        self.register_buffer("token_prefix", embedding[:, :1, :])
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:, :])
        self.tokenized_prompts = tokenized
        self.n_cls, self.n_ctx = len(classnames), n_ctx

    def forward(self):
        ctx = self.ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        return torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1)


class CustomCLIP(nn.Module):
    def __init__(self, classnames, clip_model, n_ctx=4):
        super().__init__()
        self.prompt_learner = PromptLearner(classnames, clip_model, n_ctx)
        self.tokenized_prompts = self.prompt_learner.tokenized_prompts
        self.image_encoder = clip_model.visual
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.dtype = clip_model.dtype

    def forward(self, image):
        image_features = self.image_encoder(image.type(self.dtype))
        text_features = self.text_encoder(self.prompt_learner(), self.tokenized_prompts)
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        return self.logit_scale.exp() * image_features @ text_features.t()


def tiny_clip(seed: int = 0):
    from clip.model import CLIP

    torch.manual_seed(seed)
    return CLIP(64, 32, 2, 64, 8, 77, 49408, 64, 2, 2).eval()  # embed 64, 32x32 images, 2-layer towers


def build_custom_clip(classnames, n_ctx: int = 4, seed: int = 0) -> CustomCLIP:
    model = CustomCLIP(classnames, tiny_clip(seed), n_ctx)
    for name, p in model.named_parameters():  # as the CoOp trainer does
        p.requires_grad_("prompt_learner" in name)
    return model


def main() -> None:
    import prompt_plugins as pp

    classnames = ["red circle", "blue square", "green triangle", "yellow star",
                  "purple ring", "orange cube", "white cone", "black torus"]
    base = classnames[:4]
    coop = build_custom_clip(classnames)
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(12, 3, 32, 32, generator=g), torch.arange(12) % 4  # base-class data only
    dataset = list(zip(images, labels.tolist()))

    opt = torch.optim.SGD([coop.prompt_learner.ctx], lr=0.01)  # stage 1: the CoOp backbone
    for _ in range(3):
        loss = F.cross_entropy(coop(images), labels)
        opt.zero_grad(), loss.backward(), opt.step()

    # stage 2: DPC in three lines
    dpc = pp.DualPromptWrapper(coop, base_classes=base, classnames=classnames, weight_base=0.2)
    objective = pp.HardNegativeOptimizer(dpc, dataset, top_k=2)
    opt = torch.optim.SGD(dpc.trainable_parameters(), lr=0.002)

    before = dpc.backbone_logits(images)
    for step in range(3):
        loss = objective(images[:2], labels[:2])
        opt.zero_grad(), loss.backward(), opt.step()
        print(f"step {step}  hard-negative InfoNCE {loss.item():.4f}  (N={len(objective.last_batch.labels)})")
    with torch.no_grad():
        after = dpc(images)
    print("new-class logits unchanged:", torch.equal(after[:, 4:], before[:, 4:]))
    print("base-class logits moved by:", f"{(after[:, :4] - before[:, :4]).abs().max().item():.4f}")


if __name__ == "__main__":
    main()
