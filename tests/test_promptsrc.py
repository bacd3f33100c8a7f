"""PromptSRC: the self-regulating losses against the spec's numbers, the frozen text target (mean of the unnormalised
template features, computed once per class list), the frozen image pass (once per batch, no autograd), Gaussian
prompt aggregation (weights, fp32 aggregate, resume), and ``method="promptsrc"`` on every backend (round trip,
``disabled()``, ``eject()``, DPC's new classes identical to the backbone's)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins.errors import CheckpointError, ConfigError, ShapeError
from prompt_plugins.methods.promptsrc import IMAGENET_TEMPLATES, feature_l1, gaussian_weights, logit_kl
from prompt_plugins.text_targets import frozen_text_features
from tiny_models import images, library_image_features, library_text_features, make_model

TINY = dict(depth=3, visual_depth=3)  # the tiny CLIPs have 3 blocks per tower; 4+4 tokens, "a photo of a"


def _wrap(model, names):
    return pp.wrap(model, names, method="promptsrc", **TINY)


# ------------------------------------------------------------------------------------------ losses
def test_kl_toy_numbers_of_the_spec():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    frozen = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    total = (F.softmax(frozen, 1) * (F.log_softmax(frozen, 1) - F.log_softmax(logits, 1))).sum()
    assert abs(float(total) - 0.342889) < 1e-6
    assert abs(float(logit_kl(logits, frozen)) - 0.057148) < 1e-6  # released: Σ / (B·C)
    assert abs(float(logit_kl(logits, frozen, "batchmean")) - 0.171445) < 1e-6
    with pytest.raises(ConfigError, match="reduction='mean' is unknown"):
        logit_kl(logits, frozen, "mean")


def test_loss_terms_and_their_gradients():
    g = torch.Generator().manual_seed(0)
    text, frozen_text = torch.randn(3, 8, generator=g, requires_grad=True), torch.randn(3, 8, generator=g)
    image, frozen_image = torch.randn(2, 8, generator=g, requires_grad=True), torch.randn(2, 8, generator=g)
    n = lambda t: F.normalize(t, dim=-1)  # noqa: E731
    logits = 100 * n(image) @ n(text).t()
    y = torch.tensor([0, 2])
    loss = pp.PromptSRCLoss(kl_reduction="batchmean")
    terms = loss.terms(logits, y, text_features=text, frozen_text_features=frozen_text, image_features=image,
                       frozen_image_features=frozen_image)
    frozen_logits = 100 * n(frozen_image) @ n(frozen_text).t()
    torch.testing.assert_close(terms["text"], 25 * (n(text) - n(frozen_text)).abs().mean())
    torch.testing.assert_close(terms["image"], 10 * (n(image) - n(frozen_image)).abs().mean())
    torch.testing.assert_close(terms["kl"], F.kl_div(F.log_softmax(logits, 1), F.softmax(frozen_logits, 1),
                                                     reduction="batchmean"))
    torch.testing.assert_close(terms["ce"], F.cross_entropy(logits, y))
    total = loss(logits, y, text_features=text, frozen_text_features=frozen_text, image_features=image,
                 frozen_image_features=frozen_image)
    torch.testing.assert_close(total, sum(terms.values()))
    total.backward()
    assert text.grad.abs().sum() > 0 and image.grad.abs().sum() > 0
    no_ce = loss(logits.detach(), text_features=text, frozen_text_features=frozen_text, image_features=image,
                 frozen_image_features=frozen_image)  # without labels: the regularisers alone
    torch.testing.assert_close(no_ce, terms["text"] + terms["image"] + terms["kl"])
    with pytest.raises(ShapeError, match="same shape"):
        feature_l1(text, frozen_text[:2])
    with pytest.raises(ConfigError, match="text_weight=-1"):
        pp.PromptSRCLoss(text_weight=-1)


def test_frozen_text_target_is_the_normalised_mean_of_unnormalised_template_features(classnames):
    model = make_model("openai")
    prompted = _wrap(model, classnames)
    assert len(IMAGENET_TEMPLATES) == 60 and IMAGENET_TEMPLATES[0] == "a photo of a {}."
    import clip

    templates = IMAGENET_TEMPLATES[:3]
    raw = torch.stack([model.encode_text(clip.tokenize([t.format(c) for c in classnames])).float() for t in templates])
    expected = F.normalize(raw.mean(0), dim=-1)
    got = frozen_text_features(prompted, templates)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(got, F.normalize(F.normalize(raw, dim=-1).mean(0), dim=-1), atol=1e-6)
    one = frozen_text_features(prompted, ["a photo of a {}."], classes=[2, 0])
    torch.testing.assert_close(one, library_text_features("openai", model, [f"a photo of a {classnames[i]}."
                                                                            for i in (2, 0)]), atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="non-empty list of templates"):
        frozen_text_features(prompted, "a photo of a {}.")


def test_from_model_runs_the_frozen_passes_once(classnames):
    """Per step: one prompted and one frozen image pass (no graph); the template ensemble once per class list."""
    model = make_model("openai")
    prompted = _wrap(model, classnames)
    loss = pp.PromptSRCLoss()
    calls = []
    model.visual.register_forward_hook(lambda m, i, o: calls.append(o.requires_grad))
    x, y = images(2), torch.tensor([0, 1])
    for step in range(2):
        calls.clear()
        value = loss.from_model(prompted, x, y, classes=[0, 1, 2])
        value.backward()
        assert sorted(calls) == [False, True] and loss.targets.computed == 1
    assert prompted.prompt.visual.grad.abs().sum() > 0 and prompted.prompt.ctx.grad.abs().sum() > 0
    loss.from_model(prompted, x, torch.tensor([0, 3]))  # another class list: computed once more
    assert loss.targets.computed == 2


# ------------------------------------------------------------------------------------------ GPA
def test_gaussian_weights_of_the_spec():
    g = gaussian_weights(20, 15, 1)
    expected = [0.004432, 0.053991, 0.241971, 0.398942, 0.241971, 0.053991, 0.004432]
    assert torch.allclose(g[11:18], torch.tensor(expected, dtype=torch.float64), atol=1e-6)
    assert abs(float(g.sum()) - 1) < 1e-12 and float(g[:11].max()) < 2e-4 and float(g[18:].max()) < 2e-4
    far = gaussian_weights(3, 15, 1)  # a mean beyond the run: finite weights, the last epoch dominates
    assert torch.isfinite(far).all() and far[-1] > 0.99


def _epoch_values(module, e):
    with torch.no_grad():
        for i, p in enumerate(module.parameters()):
            p.fill_(float(e + 1) + i / 10)


def test_aggregation_is_the_weighted_mean_in_fp32_and_resumes(classnames):
    prompted = _wrap(make_model("openai"), classnames)
    module = prompted.prompt
    gpa = pp.GaussianPromptAggregation(module, epochs=4, mean=2, std=1)
    w = gaussian_weights(4, 2, 1)
    for e in range(2):
        _epoch_values(module, e)
        gpa.end_epoch(e)
    state = gpa.state_dict()
    resumed = pp.GaussianPromptAggregation(module, epochs=4, mean=2, std=1)
    resumed.load_state_dict(state)
    for agg in (gpa, resumed):
        for e in range(2, 4):
            _epoch_values(module, e)
            agg.end_epoch(e)
        assert agg.finished
        expected = sum(float(w[e]) * (e + 1) for e in range(4))
        torch.testing.assert_close(module.ctx, torch.full_like(module.ctx, expected))  # loaded into the prompts
        torch.testing.assert_close(module.visual, torch.full_like(module.visual, expected + 0.2))
    with pytest.raises(ConfigError, match="complete"):
        gpa.end_epoch()
    assert set(gpa.names) == {"ctx", "text_deep", "visual", "visual_deep"}


def test_aggregation_errors(classnames):
    module = _wrap(make_model("openai"), classnames).prompt
    gpa = pp.GaussianPromptAggregation(module, epochs=4)
    gpa.end_epoch()
    other = pp.GaussianPromptAggregation(module, epochs=5)
    with pytest.raises(ConfigError, match="saved by a run of 4 epochs, this aggregation runs 5"):
        other.load_state_dict(gpa.state_dict())
    with pytest.raises(ConfigError, match="mean 15.0, std 1.0"):
        pp.GaussianPromptAggregation(module, epochs=4, mean=3).load_state_dict(gpa.state_dict())
    with pytest.raises(ConfigError, match=r"end_epoch\(3\) after 1 aggregated"):
        gpa.end_epoch(3)
    with pytest.raises(CheckpointError, match="not a GaussianPromptAggregation state"):
        gpa.load_state_dict({"epochs": 4})
    with pytest.raises(ConfigError, match="std=0"):
        pp.GaussianPromptAggregation(module, epochs=4, std=0)
    with pytest.raises(ConfigError, match="apply\\(\\) after the last"):
        gpa.apply()


# ------------------------------------------------------------------------------------------ the method
def test_wrap_round_trip_disabled_eject_on_every_backend(backend_name, clip_model, classnames, tmp_path):
    before = {k: v.clone() for k, v in clip_model.state_dict().items()}
    prompted = _wrap(clip_model, classnames)
    p = prompted.prompt
    assert (p.n_ctx, p.depth, p.n_visual_ctx, p.visual_depth, p.ctx_words) == (4, 3, 4, 3, "a photo of a")
    x = images(2)
    loss = pp.PromptSRCLoss().from_model(prompted, x, torch.tensor([0, 1]))
    loss.backward()
    torch.optim.SGD(prompted.trainable_parameters(), lr=0.1).step()
    logits = prompted(x)
    pp.save_pretrained(prompted, tmp_path / "a")
    with prompted.disabled():
        zero_shot = prompted(x)
    prompted.eject()
    assert all(torch.equal(v, before[k]) for k, v in clip_model.state_dict().items())
    loaded = pp.from_pretrained(clip_model, tmp_path / "a")
    assert loaded.method == "promptsrc"
    torch.testing.assert_close(loaded(x), logits, atol=1e-5, rtol=0)
    text = library_text_features(backend_name, clip_model, [f"a photo of a {c}." for c in classnames])
    image = library_image_features(backend_name, clip_model, x)
    scale = pp.resolve(clip_model).logit_scale.exp().float()
    torch.testing.assert_close(zero_shot, scale * image @ text.t(), atol=1e-4, rtol=0)  # the library's zero-shot


def test_dpc_over_promptsrc_clones_every_prompt_tensor_and_keeps_new_logits(backend_name, clip_model, classnames):
    prompted = _wrap(clip_model, classnames)
    with torch.no_grad():
        for t in prompted.prompt.parameters():
            t.add_(0.05 * torch.randn_like(t))  # a trained backbone
    x, new = images(2), [2, 3]
    with torch.no_grad():  # inference (some libraries take other attention kernels with autograd on)
        backbone_new, backbone_base = prompted(x, new), prompted(x, [0, 1])
    dpc = pp.DualPromptWrapper(prompted, classnames[:2])
    assert dpc.tensor_names == ["ctx", "text_deep", "visual", "visual_deep"]
    opt = torch.optim.SGD(dpc.trainable_parameters(), lr=1.0)
    F.cross_entropy(dpc(x, classes=[0, 1]), torch.tensor([0, 1])).backward()
    opt.step()
    with torch.no_grad():
        assert torch.equal(dpc(x, classes=new), backbone_new)
        assert not torch.allclose(dpc(x, classes=[0, 1]), backbone_base, atol=1e-4)
        torch.testing.assert_close(dpc(x)[:, 2:], backbone_new, atol=1e-6, rtol=0)  # one call, base + new columns
