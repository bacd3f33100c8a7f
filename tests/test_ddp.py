"""DDP on CPU (2 gloo processes): prompt gradients equal a single-process run on the same global
batch, for CoOp (cross-entropy) and GA2 (cross-entropy + anchor loss). DPC's cross-rank hard-negative
InfoNCE is covered by tests/test_dpc.py::test_gather_rows_under_ddp_matches_one_process."""
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


def _build(method):
    model = make_model("hf").double()  # HF: float64-safe layer norms (OpenAI casts to float32)
    if method == "coop":
        return pp.wrap(model, NAMES, n_ctx=2, depth=2, n_visual_ctx=2, init_std=0.2), None
    hard = torch.randn(4, 64, generator=torch.Generator().manual_seed(3)) * 0.02
    prompted = pp.wrap(model, NAMES, method="ga2", hard_prompt=hard, depth=2, dropout=0.0)
    return prompted, pp.AttributeAnchorLoss(weight=5.0)


def _loss(module, prompted, anchor_loss, x, y, anchors):
    loss = F.cross_entropy(module(x), y)
    if anchor_loss is not None:
        loss = loss + anchor_loss.from_model(prompted, anchors)
    return loss


def _worker(rank, world, method, store, out):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    prompted, anchor_loss = _build(method)
    ddp = DDP(prompted)
    rows = slice(2 * rank, 2 * rank + 2)
    loss = _loss(ddp, prompted, anchor_loss, GLOBAL_X[rows], GLOBAL_Y[rows], ANCHORS[rank:rank + 1])
    loss.backward()
    torch.save({n: p.grad for n, p in prompted.named_parameters() if p.requires_grad}, f"{out}{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()
    # skip interpreter teardown: gloo's background threads can abort ("terminate called without an
    # active exception") when destroyed at exit, which mp.spawn would report as a failure
    os._exit(0)


def _check(method, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, method, str(tmp_path / "store"), str(tmp_path / "rank")), nprocs=2, join=True)
    prompted, anchor_loss = _build(method)
    _loss(prompted, prompted, anchor_loss, GLOBAL_X, GLOBAL_Y, ANCHORS).backward()
    ref = {n: p.grad for n, p in prompted.named_parameters() if p.requires_grad}
    assert ref and all(g is not None and g.abs().sum() > 0 for g in ref.values())
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got.keys() == ref.keys()
        for name in ref:
            torch.testing.assert_close(got[name], ref[name], atol=1e-6, rtol=0, msg=lambda m: f"rank {rank}: {name}: {m}")


def test_ddp_coop_gradients_match_single_process(tmp_path):
    _check("coop", tmp_path)


def test_ddp_ga2_anchor_gradients_match_single_process(tmp_path):
    _check("ga2", tmp_path)
