"""A plain training loop on videos: cross-entropy + GA2-CLIP attribute anchors (``anchor_kl``).

Each step draws one batch of anchor (irrelevant) clips from any iterable (here a list; a
DataLoader works the same, and is cycled), and adds
λ · KL(frozen CLIP ‖ prompted) over a bank of generic attribute prompts. The frozen side
comes from the same model with prompts disabled, so there is no second CLIP copy.
Runs in seconds on a tiny random model.
"""
import torch
import torch.nn.functional as F
from clip.model import CLIP

import prompt_plugins as pp

torch.manual_seed(0)
model = CLIP(64, 32, 3, 64, 8, 77, 49408, 64, 2, 3).eval()   # tiny: 32x32 frames, 3-layer towers
classnames = ["archery", "bowling", "juggling balls"]
prompted = pp.wrap(model, classnames, method="ga2", hard_prompt=torch.randn(4, 64), temporal_frames=8)

videos, labels = torch.randn(6, 8, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
anchor_clips = [torch.randn(1, 8, 3, 32, 32) for _ in range(3)]          # K600-style irrelevant clips
anchor_loss = pp.AttributeAnchorLoss(weight=5.0, anchors=anchor_clips)   # default bank, mode="anchor_kl"
opt = torch.optim.AdamW(prompted.trainable_parameters(), lr=4e-3, weight_decay=1e-3)

for step in range(6):
    for i in range(0, len(videos), 2):
        ce = F.cross_entropy(prompted(videos[i:i + 2]), labels[i:i + 2])
        gaa = anchor_loss.from_model(prompted)                           # next anchor batch, cycled
        loss = ce + gaa
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"epoch {step}  ce {ce.item():.4f}  anchor {gaa.item():.5f}")
