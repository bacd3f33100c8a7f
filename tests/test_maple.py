"""method="maple": visual prompts derived from the text prompts by the coupling functions (spec backbones.md §1), with
widths from the model (two text/vision width pairs), on all three backends: the released token placement, gradients
from both towers into the text prompts, coupler init, save / load, disabled(), eject(), precision options."""
import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins.methods.maple import MaPLePrompt
from tiny_models import images, library_image_features, library_text_features, make_model
from visual_reference import reference_image_features

WIDTHS = [(64, 96), (96, 64)]  # (text width, vision width)


def _maple(model, classnames, **options):
    return pp.wrap(model, classnames, method="maple", **{"depth": 3, "init_std": 0.2, **options})


@pytest.mark.parametrize("text_width, vision_width", WIDTHS)
def test_visual_prompts_enter_as_released_with_the_models_widths(backend_name, classnames, text_width, vision_width):
    model = make_model(backend_name, width=text_width, vision_width=vision_width)
    prompted = _maple(model, classnames)
    module = prompted.prompt
    assert module.proj.weight.shape == (vision_width, text_width)
    assert module.compound_prompts_text.shape == (2, 2, text_width)
    assert [tuple(c.weight.shape) for c in module.compound_prompt_projections] == [(vision_width, text_width)] * 2
    p = prompted.prompts()
    torch.testing.assert_close(p.visual, module.proj(module.ctx))
    for i, coupler in enumerate(module.compound_prompt_projections):
        torch.testing.assert_close(p.visual_deep[i], coupler(module.compound_prompts_text[i]))
    x = images(3)
    with torch.no_grad():
        ours = prompted.encode_image(x, normalize=False)
        ref = reference_image_features(backend_name, model, x, p.visual, p.visual_deep)
    torch.testing.assert_close(ours, ref.float(), atol=1e-5, rtol=1e-5)
    g = torch.Generator().manual_seed(0)
    for moved in (dict(visual=p.visual + 0.3 * torch.randn(p.visual.shape, generator=g)),
                  dict(deep=p.visual_deep + 0.3 * torch.randn(p.visual_deep.shape, generator=g))):
        args = {"visual": p.visual, "deep": p.visual_deep, **moved}
        with torch.no_grad():  # the comparison above can fail: other tokens give other features
            assert not torch.allclose(ours, reference_image_features(backend_name, model, x, **args), atol=1e-3)
    assert prompted(x).shape == (3, len(classnames))


def test_ivlp_visual_prompts_enter_as_released(backend_name, classnames):
    """The same hooks with independent visual prompts of another length and depth than the text ones."""
    model = make_model(backend_name, width=64, vision_width=96)
    prompted = pp.wrap(model, classnames, method="ivlp", n_ctx=2, depth=3, n_visual_ctx=3, visual_depth=2,
                       init_std=0.2)
    p = prompted.prompts()
    x = images(2)
    with torch.no_grad():
        ref = reference_image_features(backend_name, model, x, p.visual, p.visual_deep)
        torch.testing.assert_close(prompted.encode_image(x, normalize=False), ref.float(), atol=1e-5, rtol=1e-5)


def test_text_prompts_train_through_both_towers(backend_name, classnames):
    prompted = _maple(make_model(backend_name), classnames)
    F.normalize(prompted.encode_image(images(2)), dim=-1).sum().backward()  # the image side alone
    module = prompted.prompt
    assert module.ctx.grad.abs().sum() > 0 and module.compound_prompts_text.grad.abs().sum() > 0
    assert module.proj.weight.grad.abs().sum() > 0
    assert all(c.weight.grad.abs().sum() > 0 for c in module.compound_prompt_projections)
    before = {k: v.clone() for k, v in prompted.model.state_dict().items()}
    opt = torch.optim.SGD(prompted.trainable_parameters(), lr=0.1)
    start = {n: p.detach().clone() for n, p in module.named_parameters()}
    for _ in range(2):
        loss = F.cross_entropy(prompted(images(4)), torch.arange(4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(not torch.equal(p, start[n]) for n, p in module.named_parameters())
    assert all(torch.equal(before[k], v) for k, v in prompted.model.state_dict().items())


def test_coupler_init_shared_or_independent(classnames):
    shared = _maple(make_model("openai"), classnames, coupler_init="shared").prompt
    a, b = shared.compound_prompt_projections
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert a.weight.data_ptr() != b.weight.data_ptr()  # copies, each trains on its own
    assert not torch.equal(shared.proj.weight, a.weight)
    independent = _maple(make_model("openai"), classnames, coupler_init="independent").prompt
    a, b = independent.compound_prompt_projections
    assert not torch.equal(a.weight, b.weight)
    assert independent.options().coupler_init == "independent"


def test_defaults_are_the_released_setting(classnames):
    prompted = pp.wrap(make_model("openai"), classnames, method="maple")
    module = prompted.prompt
    assert (module.n_ctx, module.depth, module.coupler_init) == (2, 3, "shared")  # depth 9, capped by 3 blocks
    assert prompted.template == "of a {}." and module.ctx_words == "a photo"
    torch.testing.assert_close(module.ctx, prompted.backend.embed_tokens(
        torch.tensor([prompted.tokenizer.encode("a photo")]))[0].float())
    assert sum(p.numel() for p in prompted.trainable_parameters()) == 2 * 64 + 64 * 64 + 64 + 2 * 2 * 64 + 2 * (
        64 * 64 + 64)


def test_disabled_and_eject(backend_name, classnames):
    model = make_model(backend_name)
    x = images(2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ref_image = library_image_features(backend_name, model, x)
    prompted = _maple(model, classnames)
    with prompted.disabled():
        torch.testing.assert_close(prompted.encode_image(x), ref_image, atol=1e-5, rtol=0)
        torch.testing.assert_close(prompted.encode_text(), library_text_features(
            backend_name, model, [f"a photo of a {c}." for c in classnames]), atol=1e-5, rtol=0)
    assert not torch.allclose(prompted.encode_image(x), ref_image, atol=1e-4)
    assert prompted.eject() is model
    assert torch.equal(library_image_features(backend_name, model, x), ref_image)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_save_and_load_round_trip(backend_name, classnames, tmp_path):
    model = make_model(backend_name)
    prompted = _maple(model, classnames, coupler_init="independent")
    opt = torch.optim.SGD(prompted.trainable_parameters(), lr=0.1)
    F.cross_entropy(prompted(images(4)), torch.arange(4)).backward()
    opt.step()
    x = images(2)
    expected = prompted(x).detach()
    pp.save_pretrained(prompted, tmp_path / "a")
    prompted.eject()
    loaded = pp.from_pretrained(model, tmp_path / "a")
    assert isinstance(loaded.prompt, MaPLePrompt) and loaded.method == "maple"
    assert loaded.template == "of a {}." and loaded.prompt.options() == prompted.prompt.options()
    assert torch.equal(loaded(x), expected)
    loaded.eject()
    other = pp.from_pretrained(model, tmp_path / "a", classnames=["purple ring", "orange cube"])
    assert other(x).shape == (2, 2)


@pytest.mark.parametrize("options, error, match", [
    (dict(depth=4), pp.ConfigError, r"depth=4 is more than this model takes.*3 text and 3 visual blocks.*depth <= 3"),
    (dict(n_visual_ctx=4), pp.ConfigError, r"n_visual_ctx=4 differs from n_ctx=2.*method='ivlp'"),
    (dict(visual_depth=2), pp.ConfigError, r"visual_depth=2 differs from depth=3"),
    (dict(coupler_init="copied"), pp.ConfigError, r"coupler_init='copied'.*'shared' or 'independent'"),
    (dict(n_ctx=4, ctx_init="a photo"), pp.ConfigError, r"'a photo' is 2 token\(s\), fewer than n_ctx=4"),
    (dict(n_ctx=3, ctx_init_rule="whole"), pp.ConfigError, r"'a photo of a' is 4 tokens but n_ctx=3"),
    (dict(n_ctx=2, ctx_init_rule="half"), pp.ConfigError, r"ctx_init_rule='half' is unknown"),
])
def test_bad_options(classnames, options, error, match):
    with pytest.raises(error, match=match):
        _maple(make_model("openai"), classnames, **options)


def test_a_resnet_visual_tower_is_refused():
    from clip.model import CLIP

    torch.manual_seed(0)
    rn = CLIP(64, 64, (1, 1, 1, 1), 64, None, 77, 49408, 64, 2, 2).eval()
    with pytest.raises(pp.UnsupportedModelError, match="method='maple' couples .* needs a ViT visual tower"):
        pp.wrap(rn, ["cat", "dog"], method="maple")
    assert not any(m._forward_pre_hooks for m in rn.modules())


def test_fp16_model_and_autocast(classnames):
    prompted = _maple(make_model("openai", fp16=True), classnames)
    assert all(p.dtype == torch.float32 for p in prompted.trainable_parameters())
    loss = F.cross_entropy(prompted(images(4)), torch.arange(4))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in prompted.trainable_parameters())
    with torch.autocast("cpu", dtype=torch.float16):
        half = prompted(images(4))
    assert torch.isfinite(half).all()
    fp32 = _maple(make_model("openai"), classnames)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = fp32(images(4))
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits.float(), torch.arange(4)).backward()
    assert fp32.prompt.ctx.grad is not None and fp32.prompt.ctx.dtype == torch.float32


def test_prompt_dtype_fp16_rounds_what_enters_the_towers(classnames):
    """prompt_dtype="fp16" (the released .half() casts) = the same prompts rounded to fp16 by hand."""
    model = make_model("openai")
    torch.manual_seed(3)
    exact = _maple(model, classnames)
    state = exact.prompt.state_dict()
    x = images(3)
    reference = exact(x, ).detach()
    rounded_prompts = exact.prompts().map(lambda t: t.half().float())
    by_hand = exact.logits(exact.encode_image(x, prompts=rounded_prompts),
                           exact.encode_text(prompts=rounded_prompts)).detach()
    exact.eject()
    cast = _maple(model, classnames, prompt_dtype="fp16")
    cast.prompt.load_state_dict(state)
    logits = cast(x)
    torch.testing.assert_close(logits, by_hand, atol=1e-5, rtol=0)
    assert not torch.equal(logits, reference)
    logits.sum().backward()
    assert cast.prompt.ctx.grad.dtype == torch.float32 and cast.prompt.ctx.dtype == torch.float32
    with pytest.raises(pp.ConfigError, match="prompt_dtype='bf16'"):
        _maple(make_model("openai"), classnames, prompt_dtype="bf16")
