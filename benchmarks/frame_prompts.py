"""Frame-level visual prompts: fused ops vs the repeat+cat formulation, side by side.

A ViT-B/16-shaped OpenAI CLIP visual tower (width 768, 197 tokens, 12 layers, 12 heads) runs
B·T = 64 frames with 16 visual prompt tokens to depth 9 plus per-frame temporal offsets
(T = 8). Three variants, each in a fresh subprocess so peak memory is its own:

  unprompted  the same model, prompts disabled (baseline for "extra" memory)
  fused       prompt_plugins.ops (one pre-allocated buffer, broadcasting, in-place deep
              replacement when autograd does not track the activations)
  reference   *_reference ops: repeat + cat, as in the method repos

Two levels: ``tower`` (the whole visual forward, or forward+backward with ``--mode train``)
and ``ops`` (only the prompt-token ops on activation-sized tensors: 1 append + 8 replaces).
Target: fused >= 1.3x faster and <= 0.5x the extra memory of the reference.

Each variant runs ``--rounds`` times in its own subprocess, the variants interleaved, and the
medians over rounds are printed, so a drifting machine slows every variant alike.

    python benchmarks/frame_prompts.py --quick                 # CPU, 2 layers (depth 2)
    python benchmarks/frame_prompts.py --device cuda --mode both
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(args):
    import torch
    from clip.model import CLIP

    import prompt_plugins as pp

    torch.manual_seed(0)
    # small text tower (unused); ViT-B/16-shaped visual tower
    model = CLIP(512, 224, args.layers, 768, 16, 77, 49408, 256, 4, 1).eval().to(args.device)
    prompted = pp.wrap(model, ["x"], n_ctx=2, n_visual_ctx=16, visual_depth=args.depth, temporal_frames=args.frames)
    with torch.no_grad():  # non-zero offsets, as after training
        prompted.prompt.temporal.normal_(0, 0.02)
    return prompted


def child(args) -> dict:
    import torch

    from prompt_plugins import ops

    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    train = args.mode == "train"
    if args.level == "tower":
        prompted = build(args)
        n_vid = args.total // args.frames
        g = torch.Generator().manual_seed(1)
        video = torch.randn(n_vid, args.frames, 3, 224, 224, generator=g).to(args.device)
        if args.variant == "reference":  # instance attributes: plain functions, not bound
            prompted._hooks.append_op = ops.append_prompt_tokens_reference
            prompted._hooks.replace_op = ops.replace_prompt_tokens_reference
        params = list(prompted.prompt.parameters())
        if train and args.variant == "unprompted":  # a fair baseline: the tower's own forward + backward
            prompted.model.visual.class_embedding.requires_grad_(True)
            params.append(prompted.model.visual.class_embedding)
    else:
        g = torch.Generator().manual_seed(1)
        p = {k: (0.02 * torch.randn(*shape, generator=g)).to(args.device).requires_grad_(train) for k, shape in
             (("visual", (16, 768)), ("visual_deep", (args.depth - 1, 16, 768)), ("temporal", (args.frames, 16, 768)))}
        x0 = torch.randn(args.total, 197, 768, generator=g).to(args.device).requires_grad_(train)
        params = [x0, *p.values()]

    def tower_step():
        if args.variant == "unprompted":
            with prompted.disabled(), torch.enable_grad() if train else torch.no_grad():
                out = prompted.encode_image(video).sum()
                if train:
                    out.backward()
            return
        if args.mode == "train":
            prompted.encode_image(video).sum().backward()
        else:
            with torch.no_grad():
                prompted.encode_image(video)

    # ops level: the prompt ops alone on activation-sized tensors, NLD (as ln_pre sees) then LND blocks
    append = ops.append_prompt_tokens if args.variant == "fused" else ops.append_prompt_tokens_reference
    replace = ops.replace_prompt_tokens if args.variant == "fused" else ops.replace_prompt_tokens_reference

    def ops_step():
        if args.variant == "unprompted":
            return
        with torch.enable_grad() if train else torch.no_grad():
            h = append(x0, p["visual"], p["temporal"], layout="NLD").transpose(0, 1)
            for i in range(p["visual_deep"].shape[0]):
                h = replace(h * 1.0 if train else h, p["visual_deep"][i], layout="LND")  # (x 1.0: a block's output)
            if train:
                h.sum().backward()

    step = tower_step if args.level == "tower" else ops_step
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    step()  # warm-up
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(args.repeats):
        for t in params:
            t.grad = None
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:  # KiB on Linux; the warm-up step already set the high-water mark
        peak = max(rss_before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    return {"time_ms": 1000 * sorted(times)[len(times) // 2], "peak_mb": peak / 2 ** 20}


def run_variant(args, variant: str, level: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", variant, "--level", level, "--device", args.device,
           "--layers", str(args.layers), "--depth", str(args.depth), "--frames", str(args.frames),
           "--total", str(args.total), "--repeats", str(args.repeats), "--mode", args.mode,
           "--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="2 layers, prompts to depth 2 (for small CPUs)")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--depth", type=int, default=9)
    ap.add_argument("--frames", type=int, default=8, help="T")
    ap.add_argument("--total", type=int, default=64, help="B·T frames")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per subprocess (median)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="subprocesses per variant, interleaved (u, f, r, u, f, r, ...); time = median over rounds")
    ap.add_argument("--mode", default="infer", choices=["infer", "train", "both"])
    ap.add_argument("--level", default="both", choices=["tower", "ops", "both"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--child", choices=["unprompted", "fused", "reference"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.layers, args.depth, args.repeats = 2, 2, min(args.repeats, 2)
    if args.child:
        args.variant = args.child
        print(json.dumps(child(args)))
        return
    import torch

    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU x{args.threads} threads"
    print(f"frame prompts: B*T={args.total} (T={args.frames}), ViT width 768, 197 tokens, {args.layers} layers, "
          f"16 prompts to depth {args.depth}, fp32, {device}, torch {torch.__version__}")
    modes = ["infer", "train"] if args.mode == "both" else [args.mode]
    levels = ["tower", "ops"] if args.level == "both" else [args.level]
    for mode in modes:
        args.mode = mode
        for level in levels:
            variants = ("unprompted", "fused", "reference")
            runs: dict[str, list[dict]] = {v: [] for v in variants}
            for _ in range(max(1, args.rounds)):  # interleaved: machine drift hits every variant alike
                for v in variants:
                    runs[v].append(run_variant(args, v, level))
            res = {v: {"time_ms": statistics.median(r["time_ms"] for r in rs),
                       "peak_mb": statistics.median(r["peak_mb"] for r in rs)} for v, rs in runs.items()}
            base = res["unprompted"]["peak_mb"]  # ops level: the inputs alone (no op run)
            print(f"\n[{mode} / {level}]  {'variant':<11} {'time ms':>10} {'peak MB':>10} {'extra MB':>10}")
            for v, r in res.items():
                print(f"{'':<17}{v:<11} {r['time_ms']:>10.1f} {r['peak_mb']:>10.1f} {r['peak_mb'] - base:>10.1f}")
            f, r = res["fused"], res["reference"]
            speed = r["time_ms"] / f["time_ms"]
            extra_f, extra_r = f["peak_mb"] - base, r["peak_mb"] - base
            mem = extra_f / extra_r if extra_r > 0 else float("nan")
            print(f"{'':<17}speed-up reference/fused = {speed:.2f}x (target >= 1.3x: {'met' if speed >= 1.3 else 'MISSED'}); "
                  f"extra memory fused/reference = {mem:.2f}x (target <= 0.5x: {'met' if mem <= 0.5 else 'MISSED'})")


if __name__ == "__main__":
    main()
