"""A MaPLe-style training loop (``pp.wrap(..., method="maple")`` + cross-entropy) and the lines that add DPC's stage 2.
Tiny random CLIP and random images (seconds on a CPU); with real weights use ``clip.load("ViT-B/16", jit=False)``,
``pp.get_recipe("maple")`` / ``"dpc_maple"`` for the released numbers, and a DataLoader."""
import torch
import torch.nn.functional as F
from clip.model import CLIP

import prompt_plugins as pp

torch.manual_seed(0)
model = CLIP(64, 32, 2, 96, 8, 77, 49408, 64, 2, 2).eval()          # text width 64, vision width 96, 2 blocks each
classnames = ["red circle", "blue square", "green triangle", "yellow star", "purple ring", "orange cube"]
base = classnames[:4]                                                 # train on base classes, test on all
images, labels = torch.randn(12, 3, 32, 32), torch.arange(12) % 4

# --- the existing MaPLe loop (stage 1) ---
maple = pp.wrap(model, base, method="maple", depth=2)                 # "a photo" learned, template "of a {}."
opt = torch.optim.SGD(maple.trainable_parameters(), lr=0.0035, momentum=0.9, weight_decay=5e-4)
for _ in range(3):
    loss = F.cross_entropy(maple(images), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()

# --- DPC stage 2: a parallel clone of every MaPLe tensor (couplers included) for the base classes ---
maple.set_classnames(classnames)
dpc = pp.DualPromptWrapper(maple, base_classes=base, weight_base=0.2)
objective = pp.HardNegativeOptimizer(dpc, list(zip(images, labels.tolist())), top_k=2)
opt = torch.optim.SGD(dpc.trainable_parameters(), lr=0.002, momentum=0.9, weight_decay=5e-4)
for step in range(3):
    loss = objective(images[:4], labels[:4])
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"stage 2 step {step}  loss {loss.item():.4f}")
print("logits", tuple(dpc(images).shape), "new classes unchanged:", torch.equal(dpc(images, classes=classnames[4:]),
                                                                             maple(images, classes=classnames[4:])))
