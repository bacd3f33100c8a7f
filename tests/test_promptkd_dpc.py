"""DPC over a PromptKD student (issue 20 §2; spec backbones.md §7.1, §9 text="frozen"): the generic
``DualPromptWrapper`` clones the student's visual prompts and projector (``prompt_tensor_names``), the teacher
features are a buffer shared by both routes; new-class logits stay the backbone's bit for bit after stage-2 steps on
every backend, and neither the steps nor the backbone scorer move the projector's BatchNorm statistics."""
from __future__ import annotations

import torch

import prompt_plugins as pp
from test_promptkd import NAMES, student, teacher
from tiny_models import hard_negative_steps, images, make_model

BASE = NAMES[:3]


def _dataset(classes, per_class=2, seed=3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(3, 32, 32, generator=g), c) for c in classes for _ in range(per_class)]


def _trained_student(backend):
    t = teacher()
    s = student(backend, t=t)
    opt = torch.optim.SGD(s.trainable_parameters(), lr=0.1)
    kd = pp.methods.promptkd.PromptKDDistiller(t, weight=1000.0)
    for step in range(2):
        loss = kd(s, images(4, seed=step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return s.eval()


def test_dpc_over_promptkd_keeps_new_classes_and_the_statistics(backend_name, tmp_path):
    s = _trained_student(backend_name)
    x = images(3, seed=9)
    with torch.no_grad():
        backbone, backbone_new = s(x), s(x, classes=[3, 4])
    bn = s.prompt.projector.conv1[1]
    stats = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    w = pp.DualPromptWrapper(s, BASE)
    assert w.tensor_names == s.prompt.prompt_tensor_names()  # no DPC branch: what the module names
    assert "teacher_features" not in w.tensor_names
    w.train()
    with torch.no_grad():
        scores = w.backbone_logits(x)
    torch.testing.assert_close(scores, backbone, atol=1e-5, rtol=0)  # the scorer is the frozen student
    hard_negative_steps(w, _dataset(range(3)), x, torch.tensor([0, 1, 2]), lr=0.05, top_k=2)
    w.backbone_logits(x)
    assert (bn.running_mean.equal(stats[0]) and bn.running_var.equal(stats[1])
            and int(bn.num_batches_tracked) == stats[2])  # stage 2 and the scorer never move them
    w.eval()
    with torch.no_grad():
        after = w(x)
        assert torch.equal(w(x, classes=[3, 4]), backbone_new)  # new classes: the backbone, bit for bit
        assert torch.equal(after[:, 3:], backbone[:, 3:])
        assert not torch.allclose(after[:, :3], backbone[:, :3], atol=1e-3)  # base classes moved
        assert torch.equal(w.encode_text(route="base"), w.encode_text(route="new"))  # text="frozen"
    pp.save_pretrained(w, tmp_path)
    w.eject()
    loaded = pp.from_pretrained(make_model(backend_name), tmp_path)  # a plain dpc adapter: no teacher needed
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), after, atol=1e-5, rtol=0)


def test_dpc_unwrap_and_eject_restore_the_student_and_the_clip():
    model = make_model("openai")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = pp.wrap(model, NAMES, method="promptkd", teacher=teacher(), visual_depth=2)
    w = pp.DualPromptWrapper(s, BASE)
    assert not any(p.requires_grad for p in s.prompt.parameters())
    assert w.unwrap() is s and all(p.requires_grad for p in s.trainable_parameters())
    assert s.prompt.visual.requires_grad and s.eject() is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_kd_term_can_join_stage_two_as_an_option():
    """Released stage 2 is InfoNCE only; a user's loop may add the KD term on the base route (opt-in)."""
    t = teacher()
    s = student("openai", t=t).eval()
    w = pp.DualPromptWrapper(s, BASE)
    kd = pp.PromptKDDistiller(t, weight=1000.0)
    loss = kd(w, images(4), classes=[0, 1, 2])
    loss.backward()
    grads = {n: p.grad for n, p in w.named_parameters() if p.requires_grad}
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert all(p.grad is None for p in s.prompt.parameters())  # P stays frozen
