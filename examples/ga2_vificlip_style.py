"""A ViFi-CLIP-style video classifier, then the same model with GA2-CLIP prompts.

``ViFiCLIP`` below is the kind of model a user already has (own code; ViFi-CLIP's attribute
names): it keeps the user's CLIP as ``clip_model``, with ``image_encoder`` = its visual tower
and ``logit_scale``; a video (B, T, 3, H, W) goes through the visual tower frame by frame,
is averaged over T, L2-normalised, and compared with fixed class-prompt features.

Mechanism: that pipeline is exactly what ``PromptedCLIP`` does for videos, so GA2 is added by
wrapping the *same* CLIP object the ViFi model holds (no copy, no fork). Prompts live in hooks
that are only active inside the wrapped model's calls, so ``vifi(video)`` keeps its zero-shot
behaviour while ``ga2(video)`` is the prompted model; with prompts disabled the two agree.
GA2 in three lines: load the hard prompt, ``wrap(..., method="ga2")``, optimise its parameters.

Runs in seconds on a tiny random model. With real weights: ``clip.load("ViT-B/16", jit=False)``
and ``hard_prompt="exp_nce/k400_base_pre/model_best.pt"`` (another run's layer-0 context).
"""
import torch
import torch.nn.functional as F
from clip import tokenize
from clip.model import CLIP
from torch import nn

import prompt_plugins as pp


class ViFiCLIP(nn.Module):
    """Frames -> visual tower -> mean over T -> normalise -> scaled cosine with fixed text features."""

    def __init__(self, clip_model: CLIP, classnames: list[str]):
        super().__init__()
        self.clip_model, self.classnames = clip_model, classnames
        self.image_encoder, self.logit_scale = clip_model.visual, clip_model.logit_scale
        with torch.no_grad():
            text = clip_model.encode_text(tokenize([f"a photo of a {c}." for c in classnames]))
        self.register_buffer("text_features", F.normalize(text.float(), dim=-1))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        frames = self.image_encoder(video.flatten(0, 1)).float().view(b, t, -1)
        video_features = F.normalize(frames.mean(dim=1), dim=-1)  # mean first, then normalise
        return self.logit_scale.exp() * video_features @ self.text_features.t()


torch.manual_seed(0)
clip_model = CLIP(64, 32, 3, 64, 8, 77, 49408, 64, 2, 3).eval()   # tiny: 32x32 frames, 3-layer towers
classnames = ["archery", "bowling", "juggling balls"]
vifi = ViFiCLIP(clip_model, classnames)
video, labels = torch.randn(4, 8, 3, 32, 32), torch.tensor([0, 1, 2, 0])

# --- GA2-CLIP on the same CLIP (the three lines) ---
hard = torch.randn(4, 64)  # stands in for another run's prompt_learner.ctx_VPT (16 x 512 for ViT-B/16)
ga2 = pp.wrap(vifi.clip_model, classnames, method="ga2", hard_prompt=hard)
opt = torch.optim.AdamW(ga2.trainable_parameters(), lr=4e-3, weight_decay=1e-3)

with ga2.disabled():
    torch.testing.assert_close(ga2(video), vifi(video), atol=1e-3, rtol=1e-4)
print("prompts disabled: GA2 model == ViFi-style model")
ga2.print_trainable_parameters()
for step in range(5):
    loss = F.cross_entropy(ga2(video), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"step {step}  loss {loss.item():.4f}")
print("ViFi-style model unchanged:", vifi(video).argmax(-1).tolist(), "| GA2:", ga2(video).argmax(-1).tolist())
