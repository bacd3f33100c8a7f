"""DPC: DualPromptWrapper (both modes), HardNegativeOptimizer, importers, spec §9 cases T1-T8."""
import collections
import importlib.util
import math
import os
from pathlib import Path

import pytest

import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins.base_new import harmonic_mean, split_base_new
from prompt_plugins.importers import get_importer
from prompt_plugins.losses import symmetric_info_nce, symmetric_info_nce_from_logits
from prompt_plugins.methods.dpc import HardNegativeOptimizer
from dassl_files import dassl_optim, save_checkpoint
from tiny_models import hard_negative_steps, images, make_model

ROOT = Path(__file__).resolve().parents[1]
convert_coop, convert_dpc = get_importer("coop").convert, get_importer("dpc").convert
NAMES = ["red circle", "blue square", "green triangle", "yellow star", "purple ring", "orange cube", "white cone"]
BASE = NAMES[:4]


def _example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _dataset(classes, per_class=2, seed=3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(3, 32, 32, generator=g), c) for c in classes for _ in range(per_class)]


def _pattern(a, b, shape=(1, 64)):
    return torch.tensor([a, b], dtype=torch.float32).repeat(shape[-1] // 2).expand(shape).clone()


def _toy_wrapper(mode="converse", weight_base=0.2, weight_new=0.0):
    """A 1-context-token PromptedCLIP whose ctx is the pattern P = [1, 2, 1, 2, ...]."""
    prompted = pp.wrap(make_model("openai"), NAMES, n_ctx=1)
    with torch.no_grad():
        prompted.prompt.ctx.copy_(_pattern(1.0, 2.0))
    return pp.DualPromptWrapper(prompted, BASE, weight_base=weight_base, weight_new=weight_new, mode=mode)


# --------------------------------------------------------------------------- spec §9, T1-T4
def test_t1_decode():
    w = _toy_wrapper()
    with torch.no_grad():
        w.trainable["ctx"].copy_(_pattern(1.2, 1.6))
    x = w.route_tensors("base")["ctx"]
    torch.testing.assert_close(x, _pattern(2.0, 0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(0.2 * x + 0.8 * _pattern(1.0, 2.0), _pattern(1.2, 1.6), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["released", "converse", "paper"])
@pytest.mark.parametrize("wb", [0.05, 0.2, 0.5, 1.0])
def test_t2_identity_init_is_bit_exact(mode, wb):
    prompted = pp.wrap(make_model("openai"), NAMES, n_ctx=3, depth=2, n_visual_ctx=2, init_std=0.7)
    w = pp.DualPromptWrapper(prompted, BASE, weight_base=wb, weight_new=0.3, mode=mode)
    for route in ("base", "new"):
        for name, t in w.route_tensors(route).items():
            assert torch.equal(t, getattr(prompted.prompt, name)), (route, name)


def test_t3_new_class_remix():
    w = _toy_wrapper(weight_new=0.1)
    P, M = _pattern(1.0, 2.0), _pattern(1.2, 1.6)
    with torch.no_grad():
        w.trainable["ctx"].copy_(M)
    new = w.route_tensors("new")["ctx"]
    torch.testing.assert_close(new, _pattern(1.1, 1.8), atol=1e-6, rtol=0)
    stored = 0.1 * M + 0.9 * P  # what the official loader writes into ctx, then decoded by forward()
    torch.testing.assert_close(stored, _pattern(1.02, 1.96), atol=1e-6, rtol=0)
    torch.testing.assert_close((stored - 0.8 * P) / 0.2, new, atol=1e-5, rtol=0)
    w.weight_new = 0.0
    assert torch.equal(w.route_tensors("new")["ctx"], P)


@pytest.mark.parametrize("mode, m1, base1", [
    ("released", (0.99, 1.98), (0.99, 1.98)),          # X itself moves by lr / w_b = 5 lr
    ("converse", (0.99, 1.98), (0.95, 1.90)),          # X moves by lr / w_b^2 = 25 lr
    ("paper", (0.9996, 1.9992), (0.99992, 1.99984)),   # base prompt moves by lr * w_b^2
])
def test_t4_gradient_scaling_under_plain_sgd(mode, m1, base1):
    w = _toy_wrapper(mode=mode)
    opt = torch.optim.SGD(w.trainable_parameters(), lr=0.002)
    x = w.route_tensors("base")["ctx"]
    (0.5 * x[0, :2].pow(2).sum()).backward()
    opt.step()
    torch.testing.assert_close(w.trainable["ctx"][0, :2].detach(), torch.tensor(m1), atol=1e-6, rtol=0)
    torch.testing.assert_close(w.route_tensors("base")["ctx"][0, :2].detach(), torch.tensor(base1),
                               atol=1e-6, rtol=0)
    assert torch.equal(w.frozen_tensors()["ctx"], _pattern(1.0, 2.0))


# --------------------------------------------------------------------------- T5 InfoNCE
@pytest.mark.parametrize("scale, i2t, t2i, total", [
    (1, 0.917701, 0.930092, 0.923897),
    (10, 0.287026, 0.692093, 0.489560),
    (100, 0.006050, 5.333333, 2.669692),
])
def test_t5_symmetric_info_nce(scale, i2t, t2i, total):
    img = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    txt = torch.tensor([[0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
    s = scale * img @ txt.t()
    assert F.cross_entropy(s, torch.arange(3)).item() == pytest.approx(i2t, abs=1e-5)
    assert F.cross_entropy(s.t(), torch.arange(3)).item() == pytest.approx(t2i, abs=1e-5)
    assert symmetric_info_nce(img, txt, scale).item() == pytest.approx(total, abs=1e-5)
    assert symmetric_info_nce_from_logits(s).item() == pytest.approx(total, abs=1e-5)


# --------------------------------------------------------------------------- T6 sampler
def _t6_scores():
    orders = [[2, 5, 0, 3, 1, 4], [0, 2, 5, 1, 3, 4]]
    scores = torch.zeros(2, 6)
    for i, order in enumerate(orders):
        for rank, c in enumerate(order):
            scores[i, c] = 10.0 - rank
    return scores, torch.tensor([2, 0])


def _sampler(legacy, generator=None):
    w = pp.wrap(make_model("openai"), [f"class {i}" for i in range(6)], method="dpc", n_ctx=1)
    return HardNegativeOptimizer(w, class_index={c: [c] for c in range(6)}, top_k=4, legacy=legacy,
                                 generator=generator)


def test_t6_sampler_as_released_both_fallback_outcomes():
    scores, labels = _t6_scores()
    hn = _sampler(legacy=True)
    outcomes = collections.Counter()
    for seed in range(200):
        hn.generator = torch.Generator().manual_seed(seed)
        negs = hn.sample_negatives(scores, labels)
        flat = [2, *negs[0], 0, *negs[1]]
        # the released fallback: C-2 = 4 draws of randint(1, 4); only class 4 is unused
        g = torch.Generator().manual_seed(seed)
        drawn_4 = any(int(torch.randint(1, 5, (1,), generator=g)) == 4 for _ in range(4))
        assert flat == ([2, 5, 3, 0, 1, 4] if drawn_4 else [2, 5, 3, 0, 1]), seed
        outcomes[len(flat)] += 1
    assert set(outcomes) == {5, 6}
    assert outcomes[5] / 200 == pytest.approx((3 / 4) ** 4, abs=0.08)


def test_t6_sampler_fixed_is_deterministic():
    scores, labels = _t6_scores()
    for seed in range(5):
        hn = _sampler(legacy=False, generator=torch.Generator().manual_seed(seed))
        # ground truth masked first: sample 0 considers [5, 0, 3, 1] and keeps [5, 3, 1];
        # sample 1 has nothing left in its top 4 and the fallback takes the one unused class, 4
        assert hn.sample_negatives(scores, labels) == [[5, 3, 1], [4]]


def test_fixed_fallback_can_draw_class_zero():
    hn = _sampler(legacy=False)
    scores = torch.zeros(1, 6)
    scores[0, 3] = 5.0
    negs = hn.sample_negatives(scores, torch.tensor([1]))
    assert len(negs[0]) == 4  # top-4 of the 5 wrong classes, none used yet
    hn.top_k = 1
    hn.min_negatives = 5
    assert sorted(hn.sample_negatives(scores, torch.tensor([1]))[0]) == [0, 2, 3, 4, 5]


def test_build_batch_fetches_one_image_per_negative_class():
    data = [(torch.full((3, 32, 32), float(c)), c) for c in range(6) for _ in range(2)]
    scores, labels = _t6_scores()
    w = pp.wrap(make_model("openai"), [f"class {i}" for i in range(6)], method="dpc", n_ctx=1)
    hn = HardNegativeOptimizer(w, data, top_k=4, scorer=lambda x: scores)
    anchors = torch.stack([torch.full((3, 32, 32), 2.0), torch.full((3, 32, 32), 0.0)])
    batch = hn.build_batch(anchors, labels)
    assert batch.labels.tolist() == [2, 5, 3, 1, 0, 4]
    assert [int(img[0, 0, 0]) for img in batch.images] == batch.labels.tolist()


# --------------------------------------------------------------------------- T7, T8
def test_t7_split():
    base, new = split_base_new(list(range(7)))
    assert base == [0, 1, 2, 3] and new == [4, 5, 6]
    assert [new.index(c) for c in new] == [0, 1, 2]


def test_t8_harmonic_mean_of_means():
    coop_dpc = [(77.72, 68.85), (98.58, 94.65), (95.80, 97.60), (81.13, 70.14), (98.86, 68.37), (91.15, 91.47),
                (45.56, 24.24), (82.81, 74.10), (84.61, 49.88), (93.40, 51.62), (87.02, 66.31)]
    mean_b = sum(b for b, _ in coop_dpc) / 11
    mean_n = sum(n for _, n in coop_dpc) / 11
    assert (round(mean_b, 2), round(mean_n, 2)) == (85.15, 68.84)
    assert round(harmonic_mean(85.15, 68.84), 2) == 76.13
    assert round(sum(harmonic_mean(b, n) for b, n in coop_dpc) / 11, 2) == 75.28


# --------------------------------------------------------------------------- real CLIPs, all backends
@pytest.mark.parametrize("mode", ["released", "converse", "paper"])
def test_training_moves_base_only(backend_name, clip_model, mode):
    if mode != "released" and backend_name != "openai":
        pytest.skip("the default mode runs on every backend; the others differ only in the prompt arithmetic")
    clip_before = _snapshot(clip_model)
    w = pp.wrap(clip_model, NAMES, method="dpc", base_classes=BASE, mode=mode, weight_base=0.2,
                n_ctx=2, depth=2, n_visual_ctx=2, init_std=0.2)
    target = w.target
    base_idx, new_idx = [0, 1, 2, 3], [4, 5, 6]
    x = images(2)
    with torch.no_grad():
        text0 = {r: w.encode_text(i) for r, i in (("base", base_idx), ("new", new_idx))}
        img_new0 = w.encode_image(x, route="new")
        for idx in (base_idx, new_idx):  # at init: exactly the backbone's features
            assert torch.equal(w.encode_text(idx), target.encode_text(idx))
        assert torch.equal(w.encode_image(x, route="base"), target.encode_image(x))
        torch.testing.assert_close(w(x), w.backbone_logits(x), atol=1e-4, rtol=0)
    p0 = {n: t.clone() for n, t in w.frozen_tensors().items()}
    prompt0 = _snapshot(target.prompt)

    objective, _ = hard_negative_steps(w, _dataset(range(4)), x, torch.tensor([0, 1]), lr=0.01)
    assert len(objective.last_batch.labels) == 4 and set(objective.last_batch.labels.tolist()) == {0, 1, 2, 3}
    with torch.no_grad():
        assert torch.equal(w.encode_text(new_idx), text0["new"])
        assert torch.equal(w.encode_image(x, route="new"), img_new0)
        assert not torch.allclose(w.encode_text(base_idx), text0["base"], atol=1e-4)
        mixed = w(x)
        torch.testing.assert_close(mixed[:, 4:], w(x, classes=new_idx, route="new"), atol=1e-5, rtol=0)
        torch.testing.assert_close(mixed[:, :4], w(x, classes=base_idx, route="base"), atol=1e-5, rtol=0)
    assert all(torch.equal(p0[n], t) for n, t in w.frozen_tensors().items())
    assert all(torch.equal(prompt0[k], v) for k, v in target.prompt.state_dict().items())
    assert all(torch.equal(clip_before[k], v) for k, v in clip_model.state_dict().items())
    assert [n for n, p in w.named_parameters() if p.requires_grad] == [
        "trainable.ctx", "trainable.text_deep", "trainable.visual", "trainable.visual_deep"]


@pytest.mark.parametrize("mode", ["released", "converse", "paper"])
def test_save_load_round_trip_is_exact(backend_name, clip_model, mode, tmp_path):
    w = pp.wrap(clip_model, NAMES, method="dpc", base_classes=BASE, mode=mode, weight_base=0.3, weight_new=0.1,
                n_ctx=2, n_visual_ctx=2)
    with torch.no_grad():
        for p in w.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x = images(2)
    expected = w(x).detach()
    pp.save_pretrained(w, tmp_path)
    w.eject()
    loaded = pp.from_pretrained(clip_model, tmp_path)
    assert isinstance(loaded, pp.DualPromptWrapper)
    assert (loaded.mode, loaded.weight_base, loaded.weight_new) == (mode, 0.3, 0.1)
    assert loaded.base_classnames == BASE
    state, ref = loaded.adapter_state_dict(), w.adapter_state_dict()
    assert state.keys() == ref.keys() and all(torch.equal(state[k], ref[k]) for k in ref)
    assert torch.equal(loaded(x), expected)
    # a new class list: saved base names stay base, everything else is new
    loaded.eject()
    other = pp.from_pretrained(clip_model, tmp_path, classnames=["white cone", "blue square", "black torus"])
    assert other.base_classnames == ["blue square"]


def test_from_backbone_checkpoint(tmp_path):
    model = make_model("openai")
    stage1 = pp.wrap(model, BASE, n_ctx=3, init_std=0.3)
    pp.save_pretrained(stage1, tmp_path)
    ctx = stage1.prompt.ctx.detach().clone()
    stage1.eject()
    w = pp.DualPromptWrapper.from_backbone_checkpoint(model, tmp_path, classnames=NAMES, base_classes=BASE)
    assert torch.equal(w.frozen_tensors()["ctx"], ctx) and torch.equal(w.trainable["ctx"], ctx)
    assert w.base_indices == [0, 1, 2, 3] and w.classnames == NAMES


def test_set_classnames_keeps_base_by_name():
    w = pp.wrap(make_model("openai"), BASE, method="dpc", n_ctx=2)
    assert w.base_indices == [0, 1, 2, 3]
    w.set_classnames(["purple ring", "green triangle"])
    assert w.base_classnames == ["green triangle"] and w.base_mask().tolist() == [False, True]


def test_disabled_is_zero_shot_and_eject_restores():
    model = make_model("openai")
    before = _snapshot(model)
    w = pp.wrap(model, NAMES, method="dpc", base_classes=BASE, n_ctx=2, n_visual_ctx=2)
    x = images(2)
    with w.disabled():
        zs = w(x)
    with w.target.disabled():
        ref = w.target(x)
    torch.testing.assert_close(zs, ref, atol=1e-5, rtol=0)
    assert w.eject() is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for module in model.modules():
        assert not module._forward_pre_hooks
    with pytest.raises(pp.PromptPluginsError, match="ejected"):
        w(x)


# --------------------------------------------------------------------------- foreign CoOp model
def test_foreign_coop_model(tmp_path):
    ex = _example("dpc_foreign_coop")
    coop = ex.build_custom_clip(NAMES, n_ctx=2)
    with torch.no_grad():
        coop.prompt_learner.ctx.normal_(0, 0.3)
    clip_before = _snapshot(coop)
    x = images(2)
    with torch.no_grad():
        backbone = coop(x)
    dpc = pp.DualPromptWrapper(coop, base_classes=BASE, classnames=NAMES)
    assert dpc.tensor_names == ["prompt_learner.ctx"]
    with torch.no_grad():
        assert torch.equal(dpc(x), backbone)
    hard_negative_steps(dpc, _dataset(range(4)), x, torch.tensor([2, 3]), lr=0.01)
    with torch.no_grad():
        after = dpc(x)
    assert torch.equal(after[:, 4:], backbone[:, 4:])
    assert not torch.allclose(after[:, :4], backbone[:, :4], atol=1e-3)
    assert torch.equal(dpc.backbone_logits(x), backbone)
    assert all(torch.equal(clip_before[k], v) for k, v in coop.state_dict().items())  # ctx (P) included
    pp.save_pretrained(dpc, tmp_path)
    reloaded = pp.from_pretrained(ex.build_custom_clip(NAMES, n_ctx=2), tmp_path)
    with torch.no_grad():
        assert torch.equal(reloaded(x), after)
    assert dpc.unwrap() is coop and coop.prompt_learner.ctx.requires_grad


def test_foreign_visual_prompt_tensors_are_dualised():
    ex = _example("dpc_foreign_coop")

    class WithVPT(ex.CustomCLIP):  # a ViFi/PromptKD-style extra visual prompt next to the text ctx
        def __init__(self, *args):
            super().__init__(*args)
            self.VPT = torch.nn.Parameter(torch.zeros(64))

        def forward(self, image):
            return super().forward(image) + (self.VPT ** 2).sum()

    model = WithVPT(NAMES, ex.tiny_clip(), 2)
    dpc = pp.DualPromptWrapper(model, base_classes=[0, 1], weight_base=0.5)
    assert sorted(dpc.tensor_names) == ["VPT", "prompt_learner.ctx"] and dpc.base_classnames is None
    assert dpc.base_mask(7).tolist() == [True, True] + [False] * 5
    out = dpc(images(1), route="base")
    out.sum().backward()
    assert all(p.grad is not None for p in dpc.trainable_parameters())


# --------------------------------------------------------------------------- importers
def _official_coop_file(path, ctx, n_classes, epoch=5, seed=0):
    """A file laid out as Dassl's save_checkpoint writes CoOp's prompt learner (real SGD and scheduler objects)."""
    g = torch.Generator().manual_seed(seed)
    state = collections.OrderedDict(ctx=ctx, token_prefix=torch.randn(n_classes, 1, ctx.shape[-1], generator=g),
                                    token_suffix=torch.randn(n_classes, 77 - 1 - ctx.shape[-2], ctx.shape[-1],
                                                             generator=g))
    param = torch.nn.Parameter(ctx.clone())
    opt, sched = dassl_optim([param])
    param.grad = torch.ones_like(param)
    opt.step()
    sched.step()
    return save_checkpoint(path, state, opt, sched, epoch)


def test_coop_importer_matches_the_official_model(tmp_path):
    ex = _example("dpc_foreign_coop")
    coop = ex.build_custom_clip(NAMES, n_ctx=4)
    with torch.no_grad():
        coop.prompt_learner.ctx.normal_(0, 0.3)
    ctx = coop.prompt_learner.ctx.detach().clone()
    run = tmp_path / "coop_run"
    _official_coop_file(run / "prompt_learner" / "model.pth.tar-5", ctx, len(NAMES))
    assert get_importer("coop").detect(run)
    out = convert_coop(run, tmp_path / "adapter", classnames=NAMES)
    clip_model = ex.tiny_clip()  # same seed: the same weights as inside ``coop``
    prompted = pp.from_pretrained(clip_model, out)
    assert torch.equal(prompted.prompt.ctx, ctx)
    x = images(2)
    with torch.no_grad():
        torch.testing.assert_close(prompted(x), coop(x), atol=1e-4, rtol=1e-5)
    with pytest.raises(pp.ClassNameError, match="trained on 7 classes"):
        convert_coop(run, tmp_path / "bad", classnames=NAMES[:3])


def test_dpc_importer_rebuilds_the_wrapper(tmp_path):
    # the released code aliases ctx and P (spec dpc.md §2): a DPC run's saved ctx is the base prompt X itself
    P, X = torch.randn(4, 64) * 0.3, torch.randn(4, 64) * 0.3
    back = _official_coop_file(tmp_path / "coop" / "prompt_learner" / "model.pth.tar-50", P, 4)
    _official_coop_file(tmp_path / "dpc" / "prompt_learner" / "model.pth.tar-20", X, 4)
    out = get_importer("dpc").convert(tmp_path / "dpc", tmp_path / "adapter", backbone=back, weight_base=0.5)
    model = make_model("openai")
    with pytest.raises(pp.ConfigError, match="pass base_classes"):
        pp.from_pretrained(model, out, classnames=NAMES)
    w = pp.from_pretrained(model, out, classnames=NAMES, base_classes=BASE)
    assert (w.mode, w.weight_base) == ("released", 0.5)
    assert torch.equal(w.frozen_tensors()["ctx"], P) and torch.equal(w.trainable["ctx"], X)
    assert torch.equal(w.route_tensors("base")["ctx"], X)
    assert torch.equal(w.route_tensors("new")["ctx"], P)
    w.eject()
    named = convert_dpc(tmp_path / "dpc", tmp_path / "named", backbone=tmp_path / "coop", weight_base=0.2,
                        classnames=BASE)
    assert pp.from_pretrained(model, named).base_classnames == BASE
    with pytest.raises(pp.ConfigError, match="pass backbone="):
        convert_dpc(tmp_path / "dpc", tmp_path / "x", weight_base=0.2)


class _Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_importer_refuses_unsafe_pickle(tmp_path):
    path = tmp_path / "prompt_learner" / "model.pth.tar-1"
    path.parent.mkdir()
    torch.save({"state_dict": {"ctx": torch.zeros(2, 64)}, "epoch": 1, "optimizer": _Evil()}, path)
    with pytest.raises(pp.UnsafeCheckpointError, match="needs arbitrary code"):
        convert_coop(path, tmp_path / "out")
    assert not get_importer("coop").detect(path)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(base_classes=["cat"]), pp.ClassNameError, "base class 'cat' is not in the class list"),
    (dict(base_classes=[9]), pp.ClassNameError, "index 9 is out of range for 7 classes"),
    (dict(weight_base=0.0), pp.ConfigError, r"weight_base=0.0 is out of range: it must be in \(0, 1\]"),
    (dict(weight_base=1.5), pp.ConfigError, "weight_base=1.5 is out of range"),
    (dict(weight_new=-0.1), pp.ConfigError, r"weight_new=-0.1 is out of range: it must be in \[0, 1\]"),
    (dict(weight_base=math.nan), pp.ConfigError, "weight_base must be a finite number"),
    (dict(mode="dual"), pp.ConfigError, "mode='dual' is unknown"),
])
def test_wrapper_errors(kwargs, error, match):
    prompted = pp.wrap(make_model("openai"), NAMES, n_ctx=2)
    with pytest.raises(error, match=match):
        pp.DualPromptWrapper(prompted, **{"base_classes": BASE, **kwargs})


def test_target_without_prompt_tensor():
    with pytest.raises(pp.UnsupportedModelError, match="no prompt tensor to dualise"):
        pp.DualPromptWrapper(make_model("openai"))


@pytest.mark.parametrize("k", [0, -1])
def test_top_k_must_be_positive(k):
    w = pp.wrap(make_model("openai"), NAMES, method="dpc", n_ctx=2)
    with pytest.raises(pp.ConfigError, match=f"top_k={k} is out of range"):
        HardNegativeOptimizer(w, class_index={0: [0]}, top_k=k)


# --------------------------------------------------------------------------- DDP (2 CPU ranks, gloo)
def _ddp_worker(rank, world, store, out):
    import torch.distributed as dist

    from prompt_plugins.losses import gather_rows, symmetric_info_nce_from_logits

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    full = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    rows = [slice(0, 3), slice(3, 5)][rank]  # unequal row counts per rank
    local = full[rows].clone().requires_grad_(True)
    labels = gather_rows(torch.arange(5)[rows], with_grad=False)
    loss = symmetric_info_nce_from_logits(gather_rows(local)[:, labels])
    loss.backward()
    torch.save({"loss": loss.detach(), "grad": local.grad, "labels": labels}, f"{out}{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()
    # skip interpreter teardown: gloo's background threads can abort ("terminate called without an
    # active exception") when destroyed at exit, which mp.spawn would report as a failure
    os._exit(0)


def test_gather_rows_under_ddp_matches_one_process(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "rank")), nprocs=2, join=True)
    full = torch.randn(5, 5, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    ref = symmetric_info_nce_from_logits(full)
    ref.backward()
    for rank, rows in enumerate([slice(0, 3), slice(3, 5)]):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["labels"].tolist() == [0, 1, 2, 3, 4]
        torch.testing.assert_close(got["loss"], ref.detach())
        # every rank computes the global loss, so the gathered rows receive world_size x the gradient;
        # DDP's mean over ranks then yields exactly the gradient of the global loss
        torch.testing.assert_close(got["grad"], 2 * full.grad[rows])
