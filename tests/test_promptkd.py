"""PromptKD as a method (spec backbones.md §5): a student with visual prompts and the released projector layout,
scored with its teacher's stored text features (no text tower, no text prompt); the KD loss against numbers
computed by hand; the teacher a user brings (a PromptedCLIP of another width, or precomputed features); BatchNorm
modes; save / from_pretrained, disabled(), eject() on the three CLIP libraries."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins.errors import ClassNameError, ConfigError, ShapeError
from prompt_plugins.methods.promptkd import DistillationLoss, PromptKDDistiller
from promptkd_files import make_clip
from tiny_models import images, library_image_features, library_text_features, make_model

NAMES = ["red circle", "blue square", "green triangle", "yellow star", "purple ring"]


def teacher(names=NAMES, seed=7):
    """A CoOp/IVLP-style teacher on a wider CLIP (width 96, 48-d features), its prompts moved off their init."""
    t = pp.wrap(make_clip(96, 48, seed=seed), names, method="coop", n_ctx=4, depth=2, n_visual_ctx=2).eval()
    with torch.no_grad():
        for p in t.prompt.parameters():
            p.normal_(0, 0.3)
    return t


def student(backend, names=NAMES, t=None, **options):
    return pp.wrap(make_model(backend), names, method="promptkd", teacher=t or teacher(), visual_depth=2, **options)


def test_student_scores_with_the_teacher_features_and_the_projected_image(backend_name):
    t = teacher()
    s = student(backend_name, t=t).eval()
    x = images(3)
    text = s.encode_text()
    torch.testing.assert_close(text, t.encode_text(NAMES), atol=1e-6, rtol=0)  # stored once, same rows
    assert text.shape == (5, 48) and s.prompt.projector.conv1[0].weight.shape == (48, 64, 1, 1)
    p = s.prompt()
    with s._hooks.active(p):
        raw = s.backend.encode_image(x).float()
    c = s.prompt.projector.conv1
    h = raw @ c[0].weight[:, :, 0, 0].t() + c[0].bias
    h = (h - c[1].running_mean) / torch.sqrt(c[1].running_var + 1e-5) * c[1].weight + c[1].bias
    expect = F.normalize(h.clamp_min(0) @ c[3].weight[:, :, 0, 0].t() + c[3].bias, dim=-1)
    torch.testing.assert_close(s.encode_image(x), expect, atol=1e-5, rtol=0)
    scale = s.backend.logit_scale.exp()
    torch.testing.assert_close(s(x), scale * expect @ text.t(), atol=1e-4, rtol=0)
    assert s.prompt.prompt_tensor_names() == ["visual", "visual_deep"] + [
        f"projector.conv1.{k}" for k in ("0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias")]
    assert s.prompt().text is None and s.prompt.n_ctx == 0  # no text prompt


def test_disabled_is_the_zero_shot_student_and_eject_is_exact(backend_name):
    model = make_model(backend_name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    s = pp.wrap(model, NAMES, method="promptkd", teacher=teacher(), visual_depth=2)
    x = images(2)
    with s.disabled():
        logits = s(x)
    zero_shot = library_image_features(backend_name, model, x) @ library_text_features(
        backend_name, model, [f"a photo of a {c}." for c in NAMES]).t()
    torch.testing.assert_close(logits, s.backend.logit_scale.exp() * zero_shot, atol=1e-4, rtol=0)
    s.train()
    s(x).sum().backward()
    assert s.eject() is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    torch.testing.assert_close(library_image_features(backend_name, model, x),
                               library_image_features(backend_name, make_model(backend_name), x), atol=0, rtol=0)


def test_save_and_from_pretrained_round_trip(backend_name, tmp_path):
    t = teacher()
    s = student(backend_name, t=t)
    x = images(4)
    opt = torch.optim.SGD(s.trainable_parameters(), lr=0.1)
    for _ in range(2):  # training: the BatchNorm statistics move
        loss = PromptKDDistiller(t, weight=1000.0)(s, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert int(s.prompt.projector.conv1[1].num_batches_tracked) == 2
    s.eval()
    with torch.no_grad():
        logits = s(x)
    pp.save_pretrained(s, tmp_path)
    s.eject()
    loaded = pp.from_pretrained(make_model(backend_name), tmp_path)  # no teacher: its features are stored
    assert not loaded.training and loaded.method == "promptkd"
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), logits, atol=1e-5, rtol=0)
    loaded.set_classnames(NAMES[3:] + NAMES[:1])  # any classes the stored features cover
    torch.testing.assert_close(loaded(x), logits[:, [3, 4, 0]], atol=1e-5, rtol=0)
    with pytest.raises(ClassNameError, match=r"not \['black hole'\].*teacher="):
        loaded.set_classnames(["black hole", "red circle"])
    loaded.eject()
    more = NAMES + ["black hole"]
    wider = pp.from_pretrained(make_model(backend_name), tmp_path, classnames=more, teacher=teacher(more))
    torch.testing.assert_close(wider(x)[:, :5], logits, atol=1e-5, rtol=0)  # same teacher prompts (seed 7)


def test_batchnorm_trains_on_batch_statistics_only_while_the_student_trains():
    s = student("openai")
    bn = s.prompt.projector.conv1[1]
    x = images(4)
    s.train()
    s(x)
    assert int(bn.num_batches_tracked) == 1 and not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    stats = bn.running_mean.clone()
    s.eval()
    with torch.no_grad():
        a, b = s(x[:2]), s(x)[:2]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)  # running statistics: per-image logits
    assert torch.equal(bn.running_mean, stats) and int(bn.num_batches_tracked) == 1
    s.train()
    s.prompt.requires_grad_(False)  # a frozen student never moves its statistics
    s(x)
    assert torch.equal(bn.running_mean, stats)
    s.prompt.requires_grad_(True)
    with pytest.raises(ShapeError, match="at least 2 images"):
        s(x[:1])


def test_teacher_errors_name_the_problem(tmp_path):
    model = make_model("openai")
    with pytest.raises(ClassNameError, match=r"not \['black hole'\]"):
        pp.wrap(model, NAMES + ["black hole"], method="promptkd", teacher=teacher())
    with pytest.raises(ConfigError, match="needs its teacher"):
        pp.wrap(model, NAMES, method="promptkd")
    with pytest.raises(ConfigError, match="teacher must be a PromptedCLIP"):
        pp.wrap(model, NAMES, method="promptkd", teacher=torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="not both"):
        pp.wrap(model, NAMES, method="promptkd", teacher=teacher(), teacher_features=torch.randn(5, 8),
                teacher_classnames=NAMES)
    with pytest.raises(ShapeError, match="4 rows but 5 teacher_classnames"):
        pp.wrap(model, NAMES, method="promptkd", teacher_features=torch.randn(4, 8), teacher_classnames=NAMES)
    with pytest.raises(ClassNameError, match=r"not \['purple ring'\]"):
        pp.wrap(model, NAMES, method="promptkd", teacher_features=torch.randn(4, 8), teacher_classnames=NAMES[:4])
    s = pp.wrap(model, NAMES, method="promptkd", teacher=teacher(), visual_depth=2)
    pp.save_pretrained(s, tmp_path)
    s.eject()
    with pytest.raises(ShapeError, match="another teacher"):
        pp.from_pretrained(model, tmp_path, teacher_features=torch.randn(5, 8), teacher_classnames=NAMES)
    with pytest.raises(ConfigError, match="visual_depth=9 is more than"):
        pp.wrap(model, NAMES, method="promptkd", teacher=teacher(), visual_depth=9)


def test_precomputed_teacher_features_give_the_same_student():
    t = teacher()
    bank = t.encode_text(NAMES[::-1] + []).detach() * 3.0  # any order and norm: rows by name, normalised
    with_model = student("openai", t=t).eval()
    torch.manual_seed(0)
    s1 = pp.wrap(make_model("openai"), NAMES[:3], method="promptkd", teacher=t, visual_depth=2).eval()
    torch.manual_seed(0)
    s2 = pp.wrap(make_model("openai"), NAMES[:3], method="promptkd", teacher_features=bank,
                 teacher_classnames=NAMES[::-1], visual_depth=2).eval()
    x = images(2)
    torch.testing.assert_close(s1(x), s2(x), atol=1e-5, rtol=0)
    assert with_model.encode_text().shape == (5, 48)


def _kl_by_hand(stu, tea, t):
    total = 0.0
    for s_row, t_row in zip(stu, tea):
        zs, zt = [math.exp(v / t) for v in s_row], [math.exp(v / t) for v in t_row]
        ps, pt = [v / sum(zs) for v in zs], [v / sum(zt) for v in zt]
        total += sum(q * math.log(q / p) for p, q in zip(ps, pt))
    return total


def test_distillation_loss_against_numbers_by_hand():
    stu = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], requires_grad=True)
    tea = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert _kl_by_hand(stu.tolist(), tea.tolist(), 1.0) == pytest.approx(0.342889, abs=1e-6)  # spec §3.3 toy
    assert float(DistillationLoss()(stu, tea).detach()) == pytest.approx(0.057148, abs=1e-6)  # / (B·C)
    assert float(DistillationLoss(reduction="batchmean")(stu, tea).detach()) == pytest.approx(0.171445, abs=1e-6)  # / B
    loss = DistillationLoss(temperature=2.0, weight=1000.0)(stu, tea)
    assert float(loss.detach()) == pytest.approx(1000 * 4 * _kl_by_hand(stu.tolist(), tea.tolist(), 2.0) / 6, rel=1e-5)
    loss.backward()
    assert stu.grad is not None and stu.grad.abs().sum() > 0
    with pytest.raises(ShapeError, match="both be"):
        DistillationLoss()(stu, tea[:, :2])
    with pytest.raises(ConfigError, match="temperature"):
        DistillationLoss(temperature=0.0)
    with pytest.raises(ConfigError, match="reduction"):
        DistillationLoss(reduction="mean")


def test_teacher_runs_its_text_tower_once_and_its_image_tower_once_per_batch(monkeypatch):
    import prompt_plugins.text_requests as text_requests

    t = teacher()
    calls = {"text": 0, "image": 0}
    text, image = t.encode_text, t.encode_image
    monkeypatch.setattr(t, "encode_text", lambda *a, **k: calls.__setitem__("text", calls["text"] + 1) or text(*a, **k))
    monkeypatch.setattr(t, "encode_image", lambda *a, **k: calls.__setitem__("image", calls["image"] + 1)
                        or image(*a, **k))
    s = student("openai", t=t)
    kd = PromptKDDistiller(t, weight=1000.0)
    assert calls == {"text": 1, "image": 0}

    def no_tower(*args, **kwargs):
        raise AssertionError("a text tower ran during a distillation step")

    monkeypatch.setattr(text_requests, "encode_tokens_multi", no_tower)
    opt = torch.optim.SGD(s.trainable_parameters(), lr=0.01)
    for step in range(3):
        loss = kd(s, images(4, seed=step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert calls == {"text": 1, "image": 3} and kd.teacher_calls == 3
    assert all(p.grad is None for p in t.parameters())  # the teacher is never trained
    with pytest.raises(ConfigError, match="teacher must be a PromptedCLIP"):
        PromptKDDistiller(object())


@pytest.mark.parametrize("dtype, fp16_weights", [(torch.float16, True), (torch.bfloat16, False)])
def test_autocast_steps_stay_finite(dtype, fp16_weights):
    """CPU autocast (fp16 with the fp16-converted OpenAI student, bf16 with fp32 weights): the projector runs in
    fp32 parameters, its BatchNorm on the autocast features; 20 steps of KD at weight 1000 stay finite."""
    t = teacher()
    s = pp.wrap(make_model("openai", fp16=fp16_weights), NAMES, method="promptkd", teacher=t, visual_depth=2)
    kd = PromptKDDistiller(t, weight=1000.0)
    opt = torch.optim.SGD(s.trainable_parameters(), lr=0.005, momentum=0.9)
    for step in range(20):
        with torch.autocast("cpu", dtype=dtype):
            loss = kd(s, images(4, seed=step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in s.trainable_parameters())
    assert s.prompt.visual.dtype == torch.float32
