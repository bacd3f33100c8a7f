"""Fast text path vs a CoOp-style full-length reference, on ViT-B/16 text-tower shapes (random weights).

Prints side-by-side ratios:
  1. text forward+backward (w.r.t. the context) and memory, for C classes x n_ctx context tokens:
     full-length reference (77 tokens/class) | EOT cut only | EOT cut + shared prefix (ours)
  2. DPC text branch (tuned prompt X with grad + frozen backbone prompt P, cached) vs one prompt
  3. eval throughput: PromptedCLIP.forward with cached class features vs the bare model's encode_image

Memory: on CUDA ``torch.cuda.max_memory_allocated`` (peak during forward+backward, minus what was
allocated before); on CPU the bytes of distinct tensors saved for backward (activation memory,
which dominates the peak), counted with ``torch.autograd.graph.saved_tensors_hooks``.

    PYTHONPATH=$PWD python benchmarks/text_encoder.py --quick          # 2-core CPU, a few minutes
    PYTHONPATH=$PWD python benchmarks/text_encoder.py --reps 2 --eval-batch 4   # every setting, 2-core CPU
    PYTHONPATH=$PWD python benchmarks/text_encoder.py --device cuda
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from contextlib import contextmanager

import torch

import prompt_plugins as pp
from prompt_plugins.prompts.base import Prompts
from prompt_plugins.text_encoder import encode_tokens, encode_tokens_multi, encode_tokens_reference

WORDS = ("red tailed hawk golden retriever spotted salamander sports car mountain bike paper towel "
         "electric guitar snow leopard coffee mug wooden spoon great white shark running shoe garden "
         "spider church window fire engine grand piano tree frog").split()


def classnames(n: int) -> list[str]:
    """Deterministic unique names of 1-6 words."""
    g = torch.Generator().manual_seed(0)
    names: list[str] = []
    while len(names) < n:
        k = int(torch.randint(1, 7, (1,), generator=g))
        name = " ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (k,), generator=g))
        if name not in names:
            names.append(name)
    return names


def vit_b16(device: str):
    from clip.model import CLIP

    torch.manual_seed(0)
    # embed_dim, image_resolution, vision_layers, vision_width, patch, context, vocab, t_width, t_heads, t_layers
    return CLIP(512, 224, 12, 768, 16, 77, 49408, 512, 8, 12).eval().to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return out


def interleaved_medians(runs: dict, device: str, repeats: int) -> dict[str, float]:
    """Warm each run up once, then time them interleaved ``repeats`` times; median seconds per run."""
    for r in runs.values():
        r()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, r in runs.items():
            times[k] += timed(r, device, 1)
    return {k: statistics.median(v) for k, v in times.items()}


@contextmanager
def saved_bytes():
    """Bytes of distinct storages autograd saves for backward (CPU memory proxy)."""
    seen: dict[int, int] = {}
    box = [0]

    def pack(t):
        if isinstance(t, torch.Tensor) and t.device.type == "cpu":
            try:
                s = t.untyped_storage()
                seen[s.data_ptr()] = s.nbytes()
            except RuntimeError:
                pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield box
    box[0] = sum(seen.values())


def memory(fn, device: str) -> float:
    """MiB: CUDA peak above baseline, or CPU bytes saved for backward."""
    if device == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    with saved_bytes() as box:
        fn()
    return box[0] / 2 ** 20


def fwd_bwd(encode, ctx: torch.Tensor):
    def run():
        feats = encode()
        feats.float().square().sum().backward()
        ctx.grad = None
    return run


def bench_text(model, device, settings, repeats):
    print("\n## 1. text forward+backward (ViT-B/16 text tower, random weights)")
    print(f"{'C':>4} {'n_ctx':>5} {'max_eot':>7} | {'full s':>8} {'eot-cut s':>9} {'ours s':>8} | "
          f"{'full/ours':>9} {'cut/ours':>8} | {'full MiB':>9} {'cut MiB':>8} {'ours MiB':>8} | max|diff|")
    rows = []
    for c, n_ctx in settings:
        prompted = pp.wrap(model, classnames(c), n_ctx=n_ctx)
        backend, tokens, ctx = prompted.backend, prompted.tokens, prompted.prompt.ctx
        paths = {
            "full": lambda: encode_tokens_reference(backend, tokens, None, ctx),
            "cut": lambda: encode_tokens_multi(backend, tokens, [(None, ctx, None)], share_prefix=False)[0],
            "ours": lambda: encode_tokens(backend, tokens, None, ctx),
        }
        with torch.no_grad():
            diff = (paths["ours"]() - paths["full"]()).abs().max().item()
        runs = {k: fwd_bwd(f, ctx) for k, f in paths.items()}
        med = interleaved_medians(runs, device, repeats)  # interleaved: a noisy neighbour hits all paths alike
        mem = {k: memory(r, device) for k, r in runs.items()}
        print(f"{c:>4} {n_ctx:>5} {int(tokens.eot.max()) + 1:>7} | {med['full']:>8.3f} {med['cut']:>9.3f} "
              f"{med['ours']:>8.3f} | {med['full'] / med['ours']:>8.1f}x {med['cut'] / med['ours']:>7.2f}x | "
              f"{mem['full']:>9.1f} {mem['cut']:>8.1f} {mem['ours']:>8.1f} | {diff:.1e}")
        rows.append((c, n_ctx, med, mem))
        prompted.eject()
    return rows


def bench_dpc(model, device, n_classes, n_ctx, repeats):
    print(f"\n## 2. DPC text branch ({n_classes // 2} base classes of {n_classes}, n_ctx {n_ctx})")
    names = classnames(n_classes)
    prompted = pp.wrap(model, names, n_ctx=n_ctx)
    base = list(range(n_classes // 2))
    frozen = Prompts(text=prompted.prompt.ctx.detach().clone())  # backbone prompt P
    ctx = prompted.prompt.ctx

    def single():
        prompted.encode_text(base).square().sum().backward()
        ctx.grad = None

    def dpc_cached():
        x, p = prompted.encode_text_multi([(base, None), (base, frozen)])
        (x.square().sum() + (x * p).sum()).backward()
        ctx.grad = None

    def dpc_uncached():
        prompted.clear_text_cache()
        dpc_cached()

    def two_passes():
        prompted.clear_text_cache()
        x = prompted.encode_text(base)
        with torch.no_grad():
            p = prompted.encode_text(base, prompts=frozen)
        (x.square().sum() + (x * p).sum()).backward()
        ctx.grad = None

    runs = {"single": single, "dpc_cached": dpc_cached, "dpc_one_pass_uncached": dpc_uncached, "two_passes": two_passes}
    med = interleaved_medians(runs, device, repeats)
    for k, v in med.items():
        print(f"  {k:<24} {v:8.4f} s   {v / med['single']:.3f}x single")
    print(f"  target: DPC (both prompts, P cached) <= 1.2x single -> {med['dpc_cached'] / med['single']:.3f}x")
    prompted.eject()
    return med


def bench_eval(model, device, n_classes, batch, repeats):
    print(f"\n## 3. eval throughput ({n_classes} classes, batch {batch}, 224x224, no_grad)")
    prompted = pp.wrap(model, classnames(n_classes), n_ctx=16).eval()
    images = torch.randn(batch, 3, 224, 224, device=device)
    with torch.no_grad():
        prompted(images)  # fills the class-feature cache
        runs = {"bare encode_image": lambda: model.encode_image(images), "PromptedCLIP.forward": lambda: prompted(images)}
        med = interleaved_medians(runs, device, repeats)
    for k, v in med.items():
        print(f"  {k:<22} {batch / v:9.1f} img/s")
    ratio = med["bare encode_image"] / med["PromptedCLIP.forward"]
    print(f"  target: forward (cached text) >= 0.97x bare encode_image throughput -> {ratio:.3f}x")
    prompted.eject()
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="fewer settings and repeats (2-core CPU)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, help="repeats per measurement (default: 3 quick, 5 full)")
    ap.add_argument("--eval-batch", type=int, help="images per eval batch (default: 4 quick, 64 full)")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    dev = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    print(f"# device: {dev}; torch {torch.__version__}; quick={args.quick}")
    model = vit_b16(args.device)
    if args.quick:
        settings, reps = [(10, 4), (100, 16)], 3
    else:
        settings, reps = [(c, n) for c in (10, 100, 400) for n in (4, 16)], 5
    reps = args.reps if args.reps is not None else reps
    rows = bench_text(model, args.device, settings, reps)
    for c, n, med, _ in rows:
        if (c, n) == (100, 16):
            print(f"  target: >= 8x faster than full length at 100 classes / 16 ctx -> {med['full'] / med['ours']:.1f}x")
    bench_dpc(model, args.device, 100, 16, reps + 1)
    bench_eval(model, args.device, 100, args.eval_batch if args.eval_batch is not None else (4 if args.quick else 64), reps + 1)


if __name__ == "__main__":
    main()
