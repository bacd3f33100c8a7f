"""DPC stage 2 in a ten-line plain PyTorch loop: ``pp.wrap(..., method="dpc")`` + ``HardNegativeOptimizer``.
Tiny random CLIP, random images; runs in seconds. With real weights use ``clip.load("ViT-B/16", jit=False)``,
start from a trained stage-1 adapter with ``pp.DualPromptWrapper.from_backbone_checkpoint``, and iterate a DataLoader."""
import torch
from clip.model import CLIP

import prompt_plugins as pp

torch.manual_seed(0)
model = CLIP(64, 32, 2, 64, 8, 77, 49408, 64, 2, 2).eval()          # embed 64, 32x32 images, 2-layer towers
classnames = ["red circle", "blue square", "green triangle", "yellow star", "purple ring", "orange cube"]
images, labels = torch.randn(12, 3, 32, 32), torch.arange(12) % 6
train_set = list(zip(images, labels.tolist()))                          # any dataset of (image, label)

dpc = pp.wrap(model, classnames, method="dpc", weight_base=0.2, ctx_init="a photo of a")
objective = pp.HardNegativeOptimizer(dpc, train_set, top_k=4)
opt = torch.optim.SGD(dpc.trainable_parameters(), lr=0.002, momentum=0.9, weight_decay=5e-4)
for step in range(5):
    batch = torch.randperm(12)[:4]
    loss = objective(images[batch], labels[batch])
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"step {step}  loss {loss.item():.4f}  contrast set N={len(objective.last_batch.labels)}")
print("logits", tuple(dpc(images).shape))
