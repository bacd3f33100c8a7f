"""DDP on CPU (2 gloo processes): prompt gradients equal a single-process run on the same global
batch, for CoOp (cross-entropy), DPC (hard-negative optimizer: global sampler + gathered InfoNCE)
and GA2 (cross-entropy + anchor loss)."""
import os

import torch
import torch.nn.functional as F

import prompt_plugins as pp
from tiny_models import images, make_model

NAMES = ["red circle", "blue square", "green triangle", "yellow star"]
# float64 towers: the comparison then measures DDP, not float32 summation order (1e-6 absolute)
GLOBAL_X = images(4, seed=11, frames=2).double()
GLOBAL_Y = torch.tensor([0, 1, 2, 3])
ANCHORS = images(2, seed=12, frames=2).double()
# DPC: 8 base classes, 2 training images each; the global batch holds items 0, 1, 2, 4 (labels 0, 0, 1, 2),
# so rank 0 alone would be free to pick class 1 or 2 as a negative but the global sampler is not
DPC_NAMES = ["red circle", "blue square", "green triangle", "yellow star", "pink ring", "grey cross",
             "black bar", "white moon"]
DPC_IMAGES = images(16, seed=13, frames=2).double()
DATASET = [(DPC_IMAGES[i], i // 2) for i in range(16)]
DPC_ITEMS = [0, 1, 2, 4]


def _data(method):
    """(global x, global y, anchors) of a method's test."""
    if method == "dpc":
        return DPC_IMAGES[DPC_ITEMS], torch.tensor([DATASET[i][1] for i in DPC_ITEMS]), None
    return GLOBAL_X, GLOBAL_Y, ANCHORS


def _build(method):
    """(module whose parameters train, loss(module_or_ddp, x, y, anchors) -> (loss, record))."""
    model = make_model("hf").double()  # HF: float64-safe layer norms (OpenAI casts to float32)
    if method == "coop":
        prompted = pp.wrap(model, NAMES, n_ctx=2, depth=2, n_visual_ctx=2, init_std=0.2)
        return prompted, lambda m, x, y, a: (F.cross_entropy(m(x), y), None)
    if method == "dpc":
        prompted = pp.wrap(model, DPC_NAMES, n_ctx=2, depth=2, n_visual_ctx=2, init_std=0.2)
        wrapper = pp.DualPromptWrapper(prompted, base_classes=DPC_NAMES)

        def hard_negative(m, x, y, a):
            hn = pp.HardNegativeOptimizer(m, DATASET, top_k=3, min_negatives=2)  # default seed on every rank
            return hn(x, y), hn.last_batch.negatives
        return wrapper, hard_negative
    hard = torch.randn(4, 64, generator=torch.Generator().manual_seed(3)) * 0.02
    prompted = pp.wrap(model, NAMES, method="ga2", hard_prompt=hard, depth=2, dropout=0.0)
    anchor_loss = pp.AttributeAnchorLoss(weight=5.0)
    return prompted, lambda m, x, y, a: (F.cross_entropy(m(x), y) + anchor_loss.from_model(prompted, a), None)


def _worker(rank, world, method, store, out):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    module, loss_fn = _build(method)
    ddp = DDP(module)
    x, y, anchors = _data(method)
    rows = slice(2 * rank, 2 * rank + 2)
    loss, record = loss_fn(ddp, x[rows], y[rows], None if anchors is None else anchors[rank:rank + 1])
    loss.backward()
    grads = {n: p.grad for n, p in module.named_parameters() if p.requires_grad}
    torch.save({"grads": grads, "record": record}, f"{out}{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()
    # skip interpreter teardown: gloo's background threads can abort ("terminate called without an
    # active exception") when destroyed at exit, which mp.spawn would report as a failure
    os._exit(0)


def _check(method, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, method, str(tmp_path / "store"), str(tmp_path / "rank")), nprocs=2, join=True)
    module, loss_fn = _build(method)
    loss, record = loss_fn(module, *_data(method))
    loss.backward()
    ref = {n: p.grad for n, p in module.named_parameters() if p.requires_grad}
    assert ref and all(g is not None and g.abs().sum() > 0 for g in ref.values())
    records = []
    for rank in range(2):
        saved = torch.load(tmp_path / f"rank{rank}.pt")
        got = saved["grads"]
        records += saved["record"] or []
        assert got.keys() == ref.keys()
        for name in ref:
            torch.testing.assert_close(got[name], ref[name], atol=1e-6, rtol=0, msg=lambda m: f"rank {rank}: {name}: {m}")
    if record is not None:  # DPC: the ranks' negatives, in rank order, are the single-process negatives
        assert records == record
        assert record[0] and record[1], record  # rank 0's anchors got negatives
        # ... which rank 0 sampling alone would not reproduce: its filter cannot see rank 1's labels 1 and 2
        wrapper, _ = _build("dpc")
        local = pp.HardNegativeOptimizer(wrapper, DATASET, top_k=3, min_negatives=2, gather=False)
        x, y, _ = _data("dpc")
        assert local.sample_negatives(wrapper.backbone_logits(x[:2]), y[:2]) != record[:2]


def test_ddp_coop_gradients_match_single_process(tmp_path):
    _check("coop", tmp_path)


def test_ddp_dpc_hard_negative_gradients_match_single_process(tmp_path):
    _check("dpc", tmp_path)


def test_ddp_ga2_anchor_gradients_match_single_process(tmp_path):
    _check("ga2", tmp_path)
