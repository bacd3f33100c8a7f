"""Mixed-precision soak: N training steps of every method under torch.autocast on the
fp16-converted OpenAI CLIP (``clip.model.convert_weights``), checking loss and prompts for NaN/inf.

    python benchmarks/mixed_precision.py                      # CPU, bf16 autocast
    python benchmarks/mixed_precision.py --device cuda        # GPU, fp16 autocast

Prints one line per method: steps run, final loss, and whether anything went non-finite.
``tests/test_mixed_precision.py`` runs the same function on CPU.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import prompt_plugins as pp

METHODS = ("coop", "dpc", "ga2")
NAMES = ["red circle", "blue square", "green triangle", "yellow star", "purple ring", "orange cube"]


def tiny_openai(device: str, seed: int = 0, fp16: bool = True):
    from clip.model import CLIP, convert_weights

    torch.manual_seed(seed)
    model = CLIP(64, 32, 3, 64, 8, 77, 49408, 64, 2, 3).eval()
    if fp16:
        convert_weights(model)
    return model.to(device)


def soak(method: str, device: str = "cpu", steps: int = 200, seed: int = 0,
         dtype: torch.dtype = torch.float16, fp16_weights: bool = True) -> dict:
    """Train ``method`` for ``steps`` under ``dtype`` autocast; return {'steps', 'loss', 'finite', 'dtype'}.

    PyTorch's CPU autocast cannot run fp16 weights under bf16 (torch.cat fails), so bf16 runs
    use fp32 weights (``fp16_weights=False``)."""
    model = tiny_openai(device, seed, fp16_weights)
    g = torch.Generator().manual_seed(seed)
    videos = method == "ga2"
    shape = (8, 4, 3, 32, 32) if videos else (8, 3, 32, 32)
    x = torch.randn(shape, generator=g).to(device)
    y = (torch.arange(8) % 6).to(device)
    common = dict(n_ctx=4, depth=2, n_visual_ctx=2)
    anchor = None
    if method == "coop":
        prompted = pp.wrap(model, NAMES, **common)
        loss_fn = lambda: F.cross_entropy(prompted(x), y)  # noqa: E731
    elif method == "dpc":
        prompted = pp.wrap(model, NAMES, method="dpc", base_classes=NAMES[:3], **common).to(device)
        data = [(x[i].cpu(), int(y[i])) for i in range(8) if int(y[i]) < 3]
        objective = pp.HardNegativeOptimizer(prompted, data, top_k=2)
        base = y < 3
        loss_fn = lambda: objective(x[base], y[base])  # noqa: E731
    else:
        hard = torch.randn(4, 64, generator=g) * 0.02
        prompted = pp.wrap(model, NAMES, method="ga2", hard_prompt=hard, depth=2).to(device)
        anchor = pp.AttributeAnchorLoss(weight=1.0, anchors=[torch.randn(1, 4, 3, 32, 32, generator=g).to(device)])
        loss_fn = lambda: F.cross_entropy(prompted(x), y) + anchor.from_model(prompted)  # noqa: E731
    prompted.to(device)
    opt = torch.optim.AdamW(prompted.trainable_parameters(), lr=2e-3)
    finite = True
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype):
            loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not torch.isfinite(loss) or not all(torch.isfinite(p).all() for p in prompted.trainable_parameters()):
            finite = False
            break
    return {"steps": steps, "loss": float(loss.detach()), "finite": finite, "dtype": str(dtype).replace("torch.", "")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"mixed precision soak on {name}, torch {torch.__version__}")
    settings = [(torch.float16, True)] if args.device.startswith("cuda") else [(torch.float16, True), (torch.bfloat16, False)]
    for method, (dtype, fp16_weights) in ((m, s) for m in METHODS for s in settings):
        t = time.perf_counter()
        r = soak(method, args.device, args.steps, dtype=dtype, fp16_weights=fp16_weights)
        print(f"{method:5s} autocast {r['dtype']} weights {'fp16' if fp16_weights else 'fp32'} steps={r['steps']} final_loss={r['loss']:.4f} finite={r['finite']} "
              f"({time.perf_counter() - t:.1f}s)")


if __name__ == "__main__":
    main()
