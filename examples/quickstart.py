"""Wrap a small random-weight OpenAI CLIP with CoOp prompts, train a few steps, save, reload.

Runs anywhere (no downloads). With real weights, replace the model line with
``model, _ = clip.load("ViT-B/16", jit=False)``.
"""
import tempfile

import torch
import torch.nn.functional as F
from clip.model import CLIP

import prompt_plugins as pp

torch.manual_seed(0)
model = CLIP(64, 32, 2, 64, 8, 77, 49408, 64, 2, 2).eval()   # embed 64, 32x32 images, 2-layer towers
classnames = ["red circle", "blue square", "green triangle"]

prompted = pp.wrap(model, classnames, method="coop", ctx_init="a photo of a", depth=2, n_visual_ctx=2)
prompted.print_trainable_parameters()

images, labels = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
opt = torch.optim.AdamW(prompted.trainable_parameters(), lr=1e-2)
for step in range(20):
    loss = F.cross_entropy(prompted(images), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 5 == 0:
        print(f"step {step:2d}  loss {loss.item():.4f}")

with tempfile.TemporaryDirectory() as run:
    pp.save_pretrained(prompted, run)
    expected = prompted(images)
    model = prompted.eject()                                   # the untouched model again
    reloaded = pp.from_pretrained(model, run)
    assert torch.equal(reloaded(images), expected)
    print("reloaded: identical logits", tuple(expected.shape))
    new = pp.from_pretrained(reloaded.eject(), run, classnames=["purple hexagon", "orange ring"])
    print("same prompts, new classes:", new(images).argmax(-1).tolist())
