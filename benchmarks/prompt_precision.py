"""fp32 prompts vs the released fp16 insertion casts (``prompt_dtype="fp16"``) on a tiny random CLIP: the same trained
MaPLe / IVLP prompts evaluated both ways, on fp32 tower weights (and on fp16-valued ones, as a released CLIP's).

    python benchmarks/prompt_precision.py            # CPU, about 20 s

Prints, per method and seed: the largest |logit difference| (and divided by the logit scale, 1/0.07 here: the cosine
difference, which a CLIP with scale 100 multiplies by 100), the largest |softmax probability difference| and how
many of the images change their top-1 class. ``benchmarks/RESULTS.md`` ("backbones") holds a run.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import prompt_plugins as pp

NAMES = ["red circle", "blue square", "green triangle", "yellow star", "purple ring", "orange cube", "white cone",
         "black hexagon"]
OPTIONS = {"maple": dict(method="maple", depth=3), "ivlp": dict(method="ivlp", depth=3, n_visual_ctx=2)}


def tiny_clip(seed: int, fp16_values: bool):
    from clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(64, 32, 3, 96, 8, 77, 49408, 64, 2, 3).eval()  # text width 64, vision width 96
    if fp16_values:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.half().float())
    return model


def compare(method: str, seed: int, fp16_values: bool, steps: int = 20, n_images: int = 64) -> dict[str, float]:
    """Train ``steps`` SGD steps in fp32, then evaluate the same prompts with and without the fp16 casts."""
    model = tiny_clip(seed, fp16_values)
    g = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(n_images, 3, 32, 32, generator=g)
    y = torch.randint(len(NAMES), (n_images,), generator=g)
    prompted = pp.wrap(model, NAMES, **OPTIONS[method])
    opt = torch.optim.SGD(prompted.trainable_parameters(), lr=0.5, momentum=0.9)
    for _ in range(steps):
        loss = F.cross_entropy(prompted(x[:16]), y[:16])
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = prompted.prompt.state_dict()
    with torch.no_grad():
        exact = prompted(x)
    prompted.eject()
    cast = pp.wrap(model, NAMES, prompt_dtype="fp16", **OPTIONS[method])
    cast.prompt.load_state_dict(state)
    with torch.no_grad():
        rounded = cast(x)
    cast.eject()
    return {"logit": float((exact - rounded).abs().max()),
            "prob": float((exact.softmax(-1) - rounded.softmax(-1)).abs().max()),
            "top1_changed": int((exact.argmax(-1) != rounded.argmax(-1)).sum()), "images": n_images,
            "logit_scale": float(model.logit_scale.exp())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| method | towers | seed | max abs logit diff | same / logit scale (cosine) | max abs prob diff | top-1 changed |")
    print("|---|---|---|---|---|---|---|")
    for method in OPTIONS:
        for fp16_values in (False, True):
            for seed in args.seeds:
                r = compare(method, seed, fp16_values)
                print(f"| {method} | {'fp16-valued' if fp16_values else 'fp32'} | {seed} | {r['logit']:.2e} | "
                      f"{r['logit'] / r['logit_scale']:.2e} | {r['prob']:.2e} | {r['top1_changed']} / {r['images']} |")


if __name__ == "__main__":
    main()
