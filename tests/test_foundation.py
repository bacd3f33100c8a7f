"""Foundation: backends, CoOp soft prompts through hooks, eject, checkpoints (all three backends)."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins import checkpoint as ckpt
from tiny_models import images, library_image_features, library_text_features, make_model


def test_import_does_not_pull_clip_or_torchvision():
    code = ("import sys, prompt_plugins; bad = [m for m in ('clip', 'torchvision', 'open_clip', 'transformers') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ctx_init_equals_library_zero_shot(backend_name, clip_model, classnames):
    prompted = pp.wrap(clip_model, classnames, ctx_init="a photo of a")
    assert prompted.backend.name == backend_name
    ours = prompted.encode_text()
    ref = library_text_features(backend_name, clip_model, [f"a photo of a {c}." for c in classnames])
    assert ours.shape == (len(classnames), 64)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_image_features_without_visual_prompts_equal_library(backend_name, clip_model, classnames):
    prompted = pp.wrap(clip_model, classnames, n_ctx=4)
    x = images(3)
    torch.testing.assert_close(prompted.encode_image(x), library_image_features(backend_name, clip_model, x),
                               atol=1e-5, rtol=0)


def test_disabled_gives_zero_shot_text(backend_name, clip_model, classnames):
    prompted = pp.wrap(clip_model, classnames, n_ctx=4, n_visual_ctx=2, depth=2)
    x = images(2)
    with prompted.disabled():
        text, img = prompted.encode_text(), prompted.encode_image(x)
    torch.testing.assert_close(text, library_text_features(
        backend_name, clip_model, [f"a photo of a {c}." for c in classnames]), atol=1e-5, rtol=0)
    torch.testing.assert_close(img, library_image_features(backend_name, clip_model, x), atol=1e-5, rtol=0)
    assert not torch.allclose(prompted.encode_image(x), img, atol=1e-4)


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_gradients_reach_prompts_only_and_clip_is_untouched(backend_name, clip_model, classnames):
    before = _snapshot(clip_model)
    prompted = pp.wrap(clip_model, classnames, n_ctx=4, depth=2, n_visual_ctx=2)
    opt = torch.optim.AdamW(prompted.trainable_parameters(), lr=1e-2)
    names = {n for n, p in prompted.named_parameters() if p.requires_grad}
    assert names == {"prompt.ctx", "prompt.text_deep", "prompt.visual", "prompt.visual_deep"}
    x, y = images(4), torch.tensor([0, 1, 2, 3])
    start = {n: p.detach().clone() for n, p in prompted.prompt.named_parameters()}
    for _ in range(3):
        loss = F.cross_entropy(prompted(x), y)
        opt.zero_grad()
        loss.backward()
        for n, p in prompted.named_parameters():
            if n.startswith("model."):
                assert p.grad is None, n
            else:
                assert p.grad is not None and p.grad.abs().sum() > 0, n
        opt.step()
    for n, p in prompted.prompt.named_parameters():
        assert not torch.equal(p, start[n]), f"{n} did not train"
    after = clip_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_eject_restores_model_exactly(backend_name, classnames):
    model = make_model(backend_name)
    model.requires_grad_(True)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    x = images(2)
    before_out = library_image_features(backend_name, model, x)
    before_state = _snapshot(model)
    prompted = pp.wrap(model, classnames, n_ctx=4, depth=2, n_visual_ctx=3)
    prompted(x).sum().backward()
    assert not torch.allclose(library_image_features(backend_name, model, x), prompted.encode_image(x))
    returned = prompted.eject()
    assert returned is model
    assert torch.equal(library_image_features(backend_name, model, x), before_out)
    assert all(torch.equal(before_state[k], v) for k, v in model.state_dict().items())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    for module in model.modules():
        assert not module._forward_pre_hooks and not module._forward_hooks
    with pytest.raises(pp.PromptPluginsError, match="ejected"):
        prompted.encode_text()


def test_user_calls_are_unaffected_while_attached(backend_name, clip_model, classnames):
    x = images(2)
    ref = library_image_features(backend_name, clip_model, x)
    prompted = pp.wrap(clip_model, classnames, n_ctx=2, n_visual_ctx=4, depth=3)
    prompted(x)
    # not bit-exact: freezing the weights lets nn.MultiheadAttention take its fused fast path
    torch.testing.assert_close(library_image_features(backend_name, clip_model, x), ref, atol=1e-6, rtol=0)


def test_deep_prompts_change_outputs(backend_name, clip_model, classnames):
    shallow = pp.wrap(clip_model, classnames, ctx_init="a photo of a")
    base_text, base_img = shallow.encode_text().detach(), shallow.encode_image(images(2)).detach()
    shallow.eject()
    deep = pp.wrap(clip_model, classnames, ctx_init="a photo of a", depth=3, n_visual_ctx=2, init_std=0.5)
    assert deep.prompt.text_deep.shape == (2, 4, 64) and deep.prompt.visual_deep.shape == (2, 2, 64)
    assert not torch.allclose(deep.encode_text(), base_text, atol=1e-3)
    assert not torch.allclose(deep.encode_image(images(2)), base_img, atol=1e-3)


def test_video_is_mean_of_frames_then_normalised(backend_name, clip_model, classnames):
    prompted = pp.wrap(clip_model, classnames, n_ctx=2, n_visual_ctx=2, video_layout="BTCHW")  # T=3: say which
    v = images(2, frames=3)
    frames = prompted.encode_image(v.flatten(0, 1), normalize=False).view(2, 3, -1)
    torch.testing.assert_close(prompted.encode_image(v), F.normalize(frames.mean(1), dim=-1), atol=1e-6, rtol=0)


def test_fp16_openai_model_with_fp32_prompts(classnames):
    model = make_model("openai", fp16=True)
    assert model.dtype == torch.float16
    prompted = pp.wrap(model, classnames, n_ctx=4, depth=2, n_visual_ctx=2)
    assert all(p.dtype == torch.float32 for p in prompted.trainable_parameters())
    opt = torch.optim.SGD(prompted.trainable_parameters(), lr=0.01)
    for _ in range(3):
        logits = prompted(images(4))
        loss = F.cross_entropy(logits, torch.arange(4))
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(logits).all() and torch.isfinite(loss)
        assert all(torch.isfinite(p).all() and torch.isfinite(p.grad).all() for p in prompted.trainable_parameters())


def test_class_specific_context(classnames):
    prompted = pp.wrap(make_model("openai"), classnames, n_ctx=3, class_specific=True)
    assert prompted.prompt.ctx.shape == (4, 3, 64)
    sub = prompted.encode_text([2, 0])
    torch.testing.assert_close(sub, prompted.encode_text()[[2, 0]], atol=1e-6, rtol=0)
    with pytest.raises(pp.ClassNameError, match="class-specific context for 4 classes"):
        prompted.set_classnames(["a", "b"])


def test_class_subsets_by_name(classnames):
    prompted = pp.wrap(make_model("openai"), classnames, n_ctx=3)
    torch.testing.assert_close(prompted.encode_text(["green triangle"]), prompted.encode_text()[[2]],
                               atol=1e-6, rtol=0)
    with pytest.raises(pp.ClassNameError, match="unknown class names \\['purple'\\]"):
        prompted.encode_text(["purple"])


# --------------------------------------------------------------------------- checkpoints
def _train_a_bit(prompted, steps=2):
    opt = torch.optim.SGD(prompted.trainable_parameters(), lr=0.5)
    for _ in range(steps):
        loss = F.cross_entropy(prompted(images(4)), torch.arange(4) % len(prompted.classnames))
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_save_load_round_trip_is_exact(backend_name, clip_model, classnames, tmp_path):
    prompted = pp.wrap(clip_model, classnames, ctx_init="a photo of a", depth=2, n_visual_ctx=2)
    _train_a_bit(prompted)
    pp.save_pretrained(prompted, tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    x = images(2)
    expected = prompted(x).detach()
    prompted.eject()
    loaded = pp.from_pretrained(clip_model, tmp_path / "run")
    for k, v in prompted.prompt.state_dict().items():
        assert torch.equal(v, loaded.prompt.state_dict()[k]), k
    assert torch.equal(loaded(x), expected)
    assert loaded.classnames == classnames


def test_load_with_a_new_class_list(clip_model, classnames, tmp_path):
    prompted = pp.wrap(clip_model, classnames, n_ctx=4)
    _train_a_bit(prompted)
    pp.save_pretrained(prompted, tmp_path)
    prompted.eject()
    new = ["purple hexagon", "orange ring"]
    loaded = pp.from_pretrained(clip_model, tmp_path, classnames=new)
    assert loaded(images(2)).shape == (2, 2)
    assert torch.equal(loaded.prompt.ctx, prompted.prompt.ctx)


def test_checkpoint_from_other_width_is_refused(classnames, tmp_path):
    prompted = pp.wrap(make_model("openai", width=64), classnames, n_ctx=4)
    pp.save_pretrained(prompted, tmp_path)
    with pytest.raises(pp.CheckpointError, match="text_width: checkpoint 64 vs model 128"):
        pp.from_pretrained(make_model("openai", width=128), tmp_path)


def test_failed_save_keeps_previous_checkpoint(classnames, tmp_path, monkeypatch):
    model = make_model("openai")
    prompted = pp.wrap(model, classnames, n_ctx=4)
    pp.save_pretrained(prompted, tmp_path)
    old_ctx = prompted.prompt.ctx.detach().clone()
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _train_a_bit(prompted)

    real_fdopen = ckpt.os.fdopen

    class ExplodingFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError("disk full (simulated)")

    monkeypatch.setattr(ckpt.os, "fdopen", lambda fd, mode: ExplodingFile(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="disk full"):
        pp.save_pretrained(prompted, tmp_path)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files  # no partial or temp file left
    prompted.eject()
    assert torch.equal(pp.from_pretrained(model, tmp_path).prompt.ctx, old_ctx)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("names, match", [
    ([], "class list is empty"),
    (["cat", "dog", "cat"], "duplicate class name 'cat' at positions 0 and 2"),
    (["cat", "  "], "class name #1 is blank"),
    ("cat", "single string"),
])
def test_bad_class_lists(names, match):
    with pytest.raises(pp.ClassNameError, match=match):
        pp.wrap(make_model("openai"), names)


def test_too_long_class_prompt_names_class_and_count():
    long = " ".join(["word"] * 70)
    with pytest.raises(pp.PromptTooLongError, match=r"class 'word word.*': its prompt is 89 tokens \(16 context \+ 71 for the name.* context length 77"):
        pp.wrap(make_model("openai"), ["cat", long], n_ctx=16)


@pytest.mark.parametrize("opts, match", [
    (dict(n_ctx=0), "n_ctx=0 is out of range"),
    (dict(n_ctx=-2), "n_ctx=-2 is out of range"),
    (dict(n_ctx=4, depth=9), r"depth=9 is out of range: it must be in \[1, 3\]"),
    (dict(n_ctx=3, ctx_init="a photo of a"), "is 4 tokens but n_ctx=3"),
    (dict(n_ctx=4, bogus=1), r"unknown option\(s\) \['bogus'\]"),
])
def test_bad_options(opts, match):
    with pytest.raises(pp.ConfigError, match=match):
        pp.wrap(make_model("openai"), ["cat", "dog"], **opts)


@pytest.mark.parametrize("shape, match", [
    ((2, 1, 32, 32), "expected 3 colour channels at dim -3, got 1"),
    ((2, 3, 64, 64), "expected 32x32 images for this model, got 64x64"),
    ((3, 32, 32), r"expected images \(B, 3, H, W\) or videos"),
    ((2, 0, 3, 32, 32), "T=0 frames"),
])
def test_bad_image_shapes(shape, match):
    prompted = pp.wrap(make_model("openai"), ["cat", "dog"], n_ctx=2)
    with pytest.raises(pp.ShapeError, match=match):
        prompted(torch.zeros(shape))


def test_unsupported_models_are_named():
    with pytest.raises(pp.UnsupportedModelError, match="expected a CLIP model .* got dict"):
        pp.wrap({}, ["cat"])
    with pytest.raises(pp.UnsupportedModelError, match="no backend recognises torch.nn.modules.linear.Linear"):
        pp.wrap(torch.nn.Linear(2, 2), ["cat"])


def test_resnet_openai_visual_prompts_refused():
    from clip.model import CLIP

    torch.manual_seed(0)
    rn = CLIP(64, 64, (1, 1, 1, 1), 64, None, 77, 49408, 64, 2, 2).eval()
    prompted = pp.wrap(rn, ["cat", "dog"], n_ctx=2)  # text prompts work on a ResNet CLIP
    assert prompted(torch.randn(1, 3, 64, 64)).shape == (1, 2)
    with pytest.raises(pp.UnsupportedModelError, match="ModifiedResNet"):
        pp.wrap(rn, ["cat", "dog"], n_ctx=2, n_visual_ctx=2)


def test_torchscript_model_refused():
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    with pytest.raises(pp.UnsupportedModelError, match="jit=False"):
        pp.wrap(scripted, ["cat"])
