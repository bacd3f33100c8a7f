"""DPC as the released code runs it (spec dpc.md §2, the correction): a replica of its CoOp+DPC prompt learner,
trained with Dassl's SGD and schedulers and saved the way Dassl saves it, imports to an adapter whose base logits
are the released model's and whose new-class logits are the CoOp backbone's; and the released mode's step."""
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import prompt_plugins as pp
from dassl_files import dassl_optim, save_checkpoint
from prompt_plugins.importers import convert, detect_format, read_checkpoint
from prompt_plugins.prompts import Prompts
from tiny_models import images, make_model

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["red circle", "blue square", "green triangle", "yellow star", "purple ring", "orange cube", "white cone"]
BASE = NAMES[:4]


def _example():
    spec = importlib.util.spec_from_file_location("dpc_foreign_coop", ROOT / "examples" / "dpc_foreign_coop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EX = _example()


class ReleasedDPCPromptLearner(EX.PromptLearner):
    """CoOp+DPC's prompt learner as it runs (written from spec dpc.md §2, not from its code): P is loaded from the
    backbone run, ``ctx = nn.Parameter(pretuned_ctx)`` shares P's storage, and forward decodes
    ``(ctx - (1 - w_b) P) / w_b``, where P is a constant to autograd but moves with ctx."""

    def __init__(self, classnames, clip_model, backbone_ctx, weight_base):
        super().__init__(classnames, clip_model, n_ctx=backbone_ctx.shape[0])
        self.pretuned_ctx = backbone_ctx.clone()
        self.ctx = nn.Parameter(self.pretuned_ctx)  # the aliasing: one storage
        self.weight_base = weight_base

    def forward(self):
        ctx = (self.ctx - (1 - self.weight_base) * self.pretuned_ctx) / self.weight_base
        return torch.cat([self.token_prefix, ctx.unsqueeze(0).expand(self.n_cls, -1, -1), self.token_suffix], dim=1)


def _train(model, params, x, y, steps, epochs):
    opt, sched = dassl_optim(params, max_epoch=epochs)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return opt, sched


@pytest.fixture(scope="module")
def released_runs(tmp_path_factory):
    """Stage 1 (CoOp on the base classes) and stage 2 (CoOp+DPC, w_b = 0.2), each saved as Dassl saves it."""
    root = tmp_path_factory.mktemp("runs")
    x, y = images(8, seed=4), torch.arange(8) % 4
    coop = EX.build_custom_clip(BASE, n_ctx=4)
    with torch.no_grad():
        coop.prompt_learner.ctx.normal_(0, 0.3)
    opt, sched = _train(coop, [coop.prompt_learner.ctx], x, y, steps=3, epochs=10)
    save_checkpoint(root / "coop" / "prompt_learner" / "model.pth.tar-3", coop.prompt_learner.state_dict(), opt, sched, 3)
    P = coop.prompt_learner.ctx.detach().clone()

    dpc = EX.build_custom_clip(BASE, n_ctx=4)
    dpc.prompt_learner = ReleasedDPCPromptLearner(BASE, EX.tiny_clip(), P, weight_base=0.2)
    assert dpc.prompt_learner.ctx.data_ptr() == dpc.prompt_learner.pretuned_ctx.data_ptr()
    opt, sched = _train(dpc, [dpc.prompt_learner.ctx], x, y, steps=4, epochs=20)
    save_checkpoint(root / "dpc" / "prompt_learner" / "model.pth.tar-4", dpc.prompt_learner.state_dict(), opt, sched, 4)
    return root, P, dpc


def test_released_checkpoint_imports_with_the_released_logits(released_runs, tmp_path):
    root, P, released = released_runs
    x = images(3, seed=9)
    with torch.no_grad():
        released_logits = released(x)  # the released model's own base-class logits
        X = released.prompt_learner.ctx.detach().clone()
    assert not torch.equal(X, P)  # stage 2 trained
    out = convert(root / "dpc", tmp_path / "adapter", format="dpc", backbone=root / "coop", classnames=BASE)
    w = pp.from_pretrained(EX.tiny_clip(), out, classnames=NAMES, base_classes=BASE)
    assert w.mode == "released" and torch.equal(w.trainable["ctx"], X) and torch.equal(w.frozen_tensors()["ctx"], P)
    with torch.no_grad():
        logits = w(x)
        torch.testing.assert_close(logits[:, :4], released_logits, atol=2e-5, rtol=0)
        backbone = EX.build_custom_clip(NAMES, n_ctx=4)  # CoOp with P over every class: the new-class logits
        backbone.prompt_learner.ctx.copy_(P)
        torch.testing.assert_close(logits[:, 4:], backbone(x)[:, 4:], atol=2e-5, rtol=0)
        # reading the same file as a mixed prompt M (X = P + (M - P) / w_b), as the converse mode would, is off
        converse = P + (X - P) / 0.2
        assert (w.target.encode_text(BASE, prompts=Prompts(text=converse)) - w.encode_text(BASE)).abs().max() > 0.05


def test_dassl_scheduler_objects_are_read_as_inert_data(released_runs):
    root, _, _ = released_runs
    file = root / "dpc" / "prompt_learner" / "model.pth.tar-4"
    obj = read_checkpoint(file)
    successor = obj["scheduler"]["successor"]
    assert successor.pickled_class == "torch.optim.lr_scheduler.CosineAnnealingLR" and successor.T_max == 20.0
    assert successor.optimizer.pickled_class == "torch.optim.sgd.SGD"
    assert obj["optimizer"]["param_groups"][0]["momentum"] == 0.9 and obj["epoch"] == 4
    assert detect_format(root / "coop") == "coop"  # the scheduler no longer hides the format


class _CallsCode:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_a_pickle_that_calls_code_is_refused_and_detection_says_so(tmp_path):
    path = tmp_path / "prompt_learner" / "model.pth.tar-1"
    path.parent.mkdir()
    torch.save({"state_dict": {"ctx": torch.zeros(2, 64), "token_prefix": torch.zeros(3, 1, 64),
                               "token_suffix": torch.zeros(3, 74, 64)}, "epoch": 1, "hook": _CallsCode()}, path)
    with pytest.raises(pp.UnsafeCheckpointError, match=r"it would call builtins.print\(...\).*allow_unsafe=True"):
        read_checkpoint(path)
    with pytest.raises(pp.UnsafeCheckpointError, match="needs arbitrary code"):
        detect_format(tmp_path)  # a refusal, not "no known format matched"


def test_released_mode_step_is_lr_over_weight_base_times_the_gradient():
    """One plain SGD step moves X by exactly (lr / w_b) * dL/dX, dL/dX being what a CoOp prompt at X gets."""
    model = make_model("openai")
    w = pp.wrap(model, NAMES, method="dpc", base_classes=BASE, n_ctx=2, init_std=0.3, weight_base=0.2)
    assert w.mode == "released"
    x, y, base = images(2), torch.tensor([0, 3]), list(range(4))
    X0 = w.trainable["ctx"].detach().clone()
    ctx = X0.clone().requires_grad_(True)  # the same loss for a plain prompt whose context is X
    img = w.target.encode_image(x)
    loss = F.cross_entropy(w.target.logits(img, w.target.encode_text(base, prompts=Prompts(text=ctx))), y)
    (grad,) = torch.autograd.grad(loss, ctx)
    opt = torch.optim.SGD(w.trainable_parameters(), lr=0.01)
    F.cross_entropy(w(x, classes=base), y).backward()
    opt.step()
    torch.testing.assert_close(w.trainable["ctx"].detach() - X0, -(0.01 / 0.2) * grad, atol=1e-7, rtol=1e-5)
    assert torch.equal(w.route_tensors("base")["ctx"], w.trainable["ctx"])  # base classes use X bit for bit
