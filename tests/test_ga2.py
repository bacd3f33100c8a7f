"""GA2-CLIP: hard-soft coupler, method "ga2", attribute-anchor loss (spec ga2clip.md §6 T1-T5, T7)."""
import math

import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins.errors import ConfigError
from prompt_plugins.base_new import harmonic_mean
from prompt_plugins.methods.ga2 import DEFAULT_ATTRIBUTE_BANK, AnchorStream, AttributeAnchorLoss, HardSoftCoupler
from prompt_plugins.prompts.soft import SoftPrompt
from tiny_models import IMAGE_SIZE, images, make_model

WIDTH = 64


def _hard(n=4, seed=5):
    return torch.randn(n, WIDTH, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- spec numeric cases
@pytest.mark.parametrize("base,novel,hm", [(77.0, 63.3, 69.48), (78.3, 58.9, 67.23), (96.8, 75.2, 84.64),
                                           (18.7, 14.3, 16.21), (77.1, 54.9, 64.13)])
def test_t1_harmonic_mean(base, novel, hm):
    assert round(harmonic_mean(base, novel), 2) == hm


def test_t2_parameter_counts_at_vit_b16_shapes():
    ivlp = SoftPrompt(512, 16, depth=9, max_depth=12, vision_width=768, n_visual_ctx=16, visual_depth=9,
                      max_visual_depth=12)
    assert sum(p.numel() for p in ivlp.parameters()) == 184_320
    ga2 = HardSoftCoupler(512, torch.zeros(16, 512), 16, depth=9, max_depth=12, vision_width=768, n_visual_ctx=16,
                          visual_depth=9, max_visual_depth=12)
    assert sum(p.numel() for p in ga2.proj.parameters()) == 524_800
    assert sum(p.numel() for p in ga2.parameters() if p.requires_grad) == 709_120
    assert "hard" in ga2.state_dict() and "hard" not in dict(ga2.named_parameters())


def test_t3_mapping_layer_example():
    coupler = HardSoftCoupler(2, torch.tensor([[1.0, -1.0]]), 1)
    with torch.no_grad():
        coupler.soft.ctx.copy_(torch.tensor([[0.5, 2.0]]))
        coupler.proj.weight.copy_(torch.tensor([[0.1, 0.2, 0.3, 0.4], [-0.5, 0.0, 0.5, 1.0]]))
        coupler.proj.bias.copy_(torch.tensor([0.0, -0.1]))
    coupler.eval()
    torch.testing.assert_close(coupler().text, torch.tensor([[0.85, 1.65]]), atol=1e-6, rtol=0)
    coupler.train()  # released dropout 0.5: each value is dropped or doubled
    torch.manual_seed(0)
    seen = {tuple(round(v, 4) for v in coupler().text[0].tolist()) for _ in range(40)}
    assert seen <= {(0.0, 0.0), (1.7, 0.0), (0.0, 3.3), (1.7, 3.3)} and len(seen) > 1


def test_t4_parity_mode_is_inert():
    logits = torch.tensor([[0.30, 0.25, 0.10], [0.05, 0.28, 0.22]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    plain = F.cross_entropy(100 * logits, y)
    assert round(plain.item(), 6) == 3.004596
    anchor = torch.tensor([[0.2371, math.sqrt(1 - 0.2371 ** 2)]], dtype=torch.float64, requires_grad=True)
    bank = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    scaled = (100 * logits).requires_grad_()
    loss = AttributeAnchorLoss(["else"], mode="parity")(anchor, bank, logits=scaled, labels=y)
    assert round(loss.item(), 6) == 3.004596
    g_anchor, g_logits = torch.autograd.grad(loss, [anchor, scaled])
    assert g_anchor.abs().max() <= 1e-14  # ∂L/∂shift = α·s·Σ_c(p_c − y_c) = 0
    (g_plain,) = torch.autograd.grad(F.cross_entropy(scaled, y), [scaled])
    torch.testing.assert_close(g_logits, g_plain, atol=1e-14, rtol=0)
    with pytest.raises(ConfigError, match="one phrase"):
        AttributeAnchorLoss(["else", "other"], mode="parity")


def test_t7_shapes_tokens_stay_constant_and_eot_index(backend_name):
    model = make_model(backend_name)
    prompted = pp.wrap(model, ["jump", "ride a horse"], method="ga2", hard_prompt=_hard(4))
    lengths, frames = [], []
    layout = prompted.backend.vision_layout
    blocks = prompted.backend.vision_blocks()

    def record(module, args, kwargs):
        x = args[0] if args else kwargs.get("hidden_states", kwargs.get("q_x", kwargs.get("x")))
        lengths.append(x.shape[1] if layout == "NLD" else x.shape[0])
        frames.append(x.shape[0] if layout == "NLD" else x.shape[1])

    # registered after the prompt hooks: sees the sequence each block actually runs on
    handles = [b.register_forward_pre_hook(record, with_kwargs=True) for b in blocks]
    prompted.encode_image(images(2, frames=5))
    for h in handles:
        h.remove()
    n_patch = (IMAGE_SIZE // 8) ** 2
    assert lengths == [1 + n_patch + 4] * len(blocks)  # 213 for ViT-B/16 with 16 prompts; replaced, never grown
    assert frames == [2 * 5] * len(blocks)  # B·T frames through the visual tower
    tok = prompted.tokenizer
    assert prompted.tokens.ids.shape[1] == 77
    for c, name in enumerate(["jump", "ride a horse"]):
        assert int(prompted.tokens.eot[c]) == 1 + 4 + len(tok.encode(f"{name}."))
        assert int(prompted.tokens.eot[c]) == int(prompted.tokens.ids[c].argmax())


# ---------------------------------------------------------------- method "ga2"
def test_ga2_images_videos_train_and_round_trip(backend_name, classnames, tmp_path):
    model = make_model(backend_name)
    prompted = pp.wrap(model, classnames, method="ga2", hard_prompt=_hard(4), video_layout="BTCHW")  # T=3 videos
    assert prompted.method == "ga2" and isinstance(prompted.prompt, HardSoftCoupler)
    names = {n for n, p in prompted.named_parameters() if p.requires_grad}
    assert names == {"prompt.soft.ctx", "prompt.soft.text_deep", "prompt.soft.visual", "prompt.soft.visual_deep",
                     "prompt.proj.weight", "prompt.proj.bias"}
    assert prompted.prompt.soft.depth == 3 and prompted.prompt.soft.n_visual_ctx == 4  # capped at 3 tiny layers
    text = prompted.prompt().text
    assert (text >= 0).all()  # ReLU after the mapping layer (spec §1.2)
    opt = torch.optim.AdamW(prompted.trainable_parameters(), lr=1e-2)
    hard_before = prompted.prompt.hard.clone()
    for x, y in ((images(4), torch.tensor([0, 1, 2, 3])), (images(2, frames=3), torch.tensor([1, 2]))):
        out = prompted(x)
        assert out.shape == (x.shape[0], len(classnames))
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        for n, p in prompted.named_parameters():
            if p.requires_grad:
                assert p.grad is not None and p.grad.abs().sum() > 0, n
        opt.step()
    torch.testing.assert_close(prompted.prompt.hard, hard_before, atol=0, rtol=0)
    prompted.eval()
    video = images(2, frames=3)
    expected = prompted(video)
    pp.save_pretrained(prompted, tmp_path / "ga2")
    fresh = make_model(backend_name)
    loaded = pp.from_pretrained(fresh, tmp_path / "ga2", video_layout="BTCHW")
    loaded.eval()
    assert loaded.method == "ga2"
    torch.testing.assert_close(loaded.prompt.hard, hard_before, atol=0, rtol=0)  # the hard prompt is saved
    torch.testing.assert_close(loaded(video), expected, atol=1e-5, rtol=0)


def test_couple_all_maps_deep_layers_and_options(classnames):
    model = make_model("openai")
    first = pp.wrap(model, classnames, method="ga2", hard_prompt=_hard(4), dropout=0.0)
    pr = first.prompt()
    assert torch.equal(pr.text_deep, first.prompt.soft.text_deep)
    first.eject()
    every = pp.wrap(model, classnames, method="ga2", hard_prompt=_hard(4), couple="all", activation="gelu",
                    dropout=0.0, n_visual_ctx=0)
    pr = every.prompt()
    torch.testing.assert_close(pr.text_deep, every.prompt.couple_tokens(every.prompt.soft.text_deep))
    assert pr.visual is None and every.prompt.config()["activation"] == "gelu"
    with pytest.raises(ConfigError, match="needs hard_prompt"):
        pp.wrap(model, classnames, method="ga2")
    with pytest.raises(ConfigError, match="n_soft=3 but the hard prompt has 4 tokens"):
        pp.wrap(model, classnames, method="ga2", hard_prompt=_hard(4), n_soft=3)
    with pytest.raises(ConfigError, match=r"needs \(n_tokens, 64\)"):
        pp.wrap(model, classnames, method="ga2", hard_prompt=torch.zeros(4, 32))
    with pytest.raises(ConfigError, match="unknown option"):
        pp.wrap(model, classnames, method="ga2", hard_prompt=_hard(4), ctx_init="a photo of a")


def test_hard_prompt_from_files(tmp_path, classnames):
    from safetensors.torch import save_file

    hard = _hard(4)
    save_file({"hard_prompt": hard}, str(tmp_path / "h.safetensors"))
    torch.save({"epoch": 3, "model_state_dict": {"prompt_learner.ctx_VPT": hard,
                                                 "prompt_learner.proj_b2n_VPT.0.bias": torch.zeros(WIDTH)}},
               tmp_path / "k400_base_pre.pt")
    for source in (tmp_path / "h.safetensors", str(tmp_path / "k400_base_pre.pt")):
        prompted = pp.wrap(make_model("hf"), classnames, method="ga2", hard_prompt=source)
        torch.testing.assert_close(prompted.prompt.hard, hard, atol=0, rtol=0)
    with pytest.raises(pp.CheckpointError, match="has no tensor 'nope'"):
        pp.wrap(make_model("hf"), classnames, method="ga2", hard_prompt=tmp_path / "h.safetensors",
                hard_prompt_key="nope")


def test_coupler_is_pure_for_functional_call(classnames):
    """DPC dualises a prompt module via torch.func.functional_call: forward must use only its tensors."""
    prompted = pp.wrap(make_model("openai"), classnames, method="ga2", hard_prompt=_hard(4), dropout=0.0)
    module = prompted.prompt
    params = {n: torch.zeros_like(p) for n, p in module.named_parameters()}
    out = torch.func.functional_call(module, params, ())
    assert out.text.abs().sum() == 0 and out.visual.abs().sum() == 0  # proj zero -> ReLU(0) = 0
    assert module().text.abs().sum() > 0  # the module's own parameters untouched


# ---------------------------------------------------------------- attribute anchors
def test_anchor_kl_default_trains_visual_prompts_and_is_zero_when_frozen(backend_name, classnames):
    model = make_model(backend_name)
    prompted = pp.wrap(model, classnames, method="ga2", hard_prompt=_hard(4))
    anchors = images(3, seed=7, frames=2)
    loss_fn = AttributeAnchorLoss(weight=2.0)
    assert loss_fn.bank == list(DEFAULT_ATTRIBUTE_BANK) and len(loss_fn.bank) >= 8
    loss = loss_fn.from_model(prompted, anchors)
    assert loss.item() > 0
    loss.backward()
    assert prompted.prompt.soft.visual.grad.abs().sum() > 0
    assert prompted.prompt.soft.visual_deep.grad.abs().sum() > 0
    with prompted.disabled():  # prompts off: the prompted path *is* frozen CLIP
        assert loss_fn.from_model(prompted, anchors).item() == 0.0
    # visual tower untouched (text-only prompts): prompted anchors == frozen anchors, so KL would be exactly zero
    prompted.eject()
    text_only = pp.wrap(model, classnames, n_ctx=4)
    with pytest.raises(ConfigError, match="bank_side='prompted'"):
        loss_fn.from_model(text_only, anchors)


def test_anchor_kl_prompted_bank_zero_at_frozen_template_then_constrains_text():
    model = make_model("open_clip")
    # ctx initialised to the frozen template's words: the prompted text path equals frozen CLIP's
    prompted = pp.wrap(model, ["a", "b"], ctx_init="a video of a person")
    loss_fn = AttributeAnchorLoss(bank_side="prompted", frozen_template="a video of a person {}.")
    anchors = images(2, seed=3)
    assert loss_fn.from_model(prompted, anchors).abs().item() < 1e-6
    with torch.no_grad():
        prompted.prompt.ctx.add_(0.5 * torch.randn(prompted.prompt.ctx.shape))
    loss = loss_fn.from_model(prompted, anchors)
    assert loss.item() > 1e-4
    loss.backward()
    assert prompted.prompt.ctx.grad.abs().sum() > 0
    # frozen bank side: a text-only prompt would get no signal (the anchors' features are untouched): refused
    with pytest.raises(ConfigError, match="text-only"):
        AttributeAnchorLoss().from_model(prompted, anchors)


def test_else_class_pushes_anchors_toward_negative_prompts(classnames):
    prompted = pp.wrap(make_model("openai"), classnames, method="ga2", hard_prompt=_hard(4), dropout=0.0)
    loss_fn = AttributeAnchorLoss(["else", "something else"], mode="else_class", anchors=[images(2, seed=4)])
    opt = torch.optim.SGD(prompted.trainable_parameters(), lr=0.05)
    first = loss_fn.from_model(prompted)
    values = [first.item()]
    for _ in range(3):
        loss = loss_fn.from_model(prompted)
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(loss_fn.from_model(prompted).item())
    assert values[-1] < values[0]


def test_parity_from_model_equals_plain_ce(classnames):
    prompted = pp.wrap(make_model("hf"), classnames, method="ga2", hard_prompt=_hard(4), dropout=0.0)
    x, y = images(2), torch.tensor([0, 3])
    logits = prompted(x)
    loss = AttributeAnchorLoss(["else"], mode="parity", alpha=1.0).from_model(prompted, images(1, seed=9),
                                                                                logits=logits, labels=y)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y), atol=1e-5, rtol=0)


def test_anchor_stream_cycles_and_empty_is_an_error():
    clips = [torch.zeros(2, 3, 4, 4), (torch.ones(2, 3, 4, 4), 0)]
    stream = AnchorStream(clips)
    seen = [next(stream) for _ in range(5)]
    assert [s.shape for s in seen] == [(1, 2, 3, 4, 4)] * 5
    assert [int(s.sum() > 0) for s in seen] == [0, 1, 0, 1, 0]
    with pytest.raises(ConfigError, match="anchor iterable is empty"):
        next(AnchorStream([]))
    with pytest.raises(ConfigError, match="no anchors"):
        AttributeAnchorLoss().next_anchors()
    with pytest.raises(ConfigError, match="mode="):
        AttributeAnchorLoss(mode="margin")
