"""Traps that gave silently wrong answers (issue 13 §4), each now refused with an error naming the fix:
a DPC image feature without a route, an anchor KL that is exactly 0, a second wrap of an attached model,
and a CLIP hidden inside a wrapper or already carrying another library's prompts."""
import copy
import gc
import weakref

import pytest
import torch
from torch import nn

import prompt_plugins as pp
from prompt_plugins.errors import ConfigError, UnsupportedModelError
from prompt_plugins.methods.ga2 import anchor_loss as anchor_module
from prompt_plugins.methods.ga2 import AttributeAnchorLoss
from fork_blocks import injecting, into_fork, maple_like
from tiny_models import images, make_model

NAMES = ["red circle", "blue square", "green triangle", "yellow star"]
BASE = NAMES[:2]


def _nudge(module: nn.Module, scale: float = 0.5) -> None:
    """Move every trainable tensor, as training would."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=g))


# --------------------------------------------------------------------------- 1. DPC image features need a route
def test_dpc_encode_image_without_route_is_refused_with_visual_prompts():
    dpc = pp.wrap(make_model("openai"), NAMES, method="dpc", base_classes=BASE, n_ctx=2, depth=2, n_visual_ctx=2)
    _nudge(dpc)
    x = images(2)
    with pytest.raises(ConfigError, match=r'differ per route.*route="base" or route="new".*wrapper\(images, classes'):
        dpc.encode_image(x)
    with torch.no_grad():  # why: the routes really give different image features
        base, new = dpc.encode_image(x, route="base"), dpc.encode_image(x, route="new")
        assert not torch.allclose(base, new, atol=1e-4)
        assert torch.equal(new, dpc.target.encode_image(x))  # new classes: the backbone prompt P
        mixed = dpc(x)  # the wrapper routes each class itself
        torch.testing.assert_close(mixed[:, 2:], dpc(x, classes=NAMES[2:], route="new"), atol=1e-5, rtol=0)
        torch.testing.assert_close(mixed[:, :2], dpc(x, classes=BASE, route="base"), atol=1e-5, rtol=0)
        assert dpc.backbone_logits(x).shape == (2, 4)


def test_dpc_encode_image_text_only_keeps_the_base_default():
    dpc = pp.wrap(make_model("openai"), NAMES, method="dpc", base_classes=BASE, n_ctx=2)
    _nudge(dpc)
    x = images(2)
    with torch.no_grad():
        feats = dpc.encode_image(x)
        assert torch.equal(feats, dpc.encode_image(x, route="base"))
        assert torch.equal(feats, dpc.encode_image(x, route="new"))


# --------------------------------------------------------------------------- 2. anchor KL that is exactly 0
def test_anchor_kl_frozen_bank_on_text_only_prompts_is_refused():
    prompted = pp.wrap(make_model("openai"), NAMES, n_ctx=2)
    anchors = images(2, seed=3, frames=2)
    with pytest.raises(ConfigError, match=r"text-only.*exactly 0.*bank_side='prompted'.*n_visual_ctx > 0"):
        AttributeAnchorLoss().from_model(prompted, anchors)
    loss = AttributeAnchorLoss(bank_side="prompted").from_model(prompted, anchors)
    assert loss.item() > 1e-4
    loss.backward()
    assert prompted.prompt.ctx.grad is not None and prompted.prompt.ctx.grad.abs().sum() > 0


def test_anchor_kl_check_leaves_the_training_rng_alone():
    hard = torch.randn(2, 64, generator=torch.Generator().manual_seed(1))
    prompted = pp.wrap(make_model("openai"), NAMES, method="ga2", hard_prompt=hard, depth=2)  # dropout 0.5
    assert prompted.training  # the coupler's dropout draws from the RNG
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    assert anchor_module._has_visual_prompts(prompted)
    assert torch.equal(torch.rand(3), expected)


def test_default_attribute_bank_is_documented_as_our_choice():
    for doc in (AttributeAnchorLoss.__doc__, anchor_module.__doc__):
        assert "prompt-plugins' own choice" in doc and '"else"' in doc and "GA2-CLIP release" in doc


# --------------------------------------------------------------------------- 3. wrapping an attached model
def test_second_wrap_of_an_attached_model_is_refused():
    model = make_model("openai")
    first = pp.wrap(model, NAMES, n_ctx=2)
    with pytest.raises(ConfigError, match=r"already carries prompts from an earlier wrap.*\.eject\(\)"):
        pp.wrap(model, NAMES, method="ga2", hard_prompt=torch.zeros(2, 64))
    assert not any(p.requires_grad for p in model.parameters())  # the refused wrap changed nothing
    assert first(images(1)).shape == (1, 4)
    copied = pp.wrap(copy.deepcopy(model), NAMES, n_ctx=2)  # the other fix the message names
    assert copied.model is not model


def test_dpc_from_backbone_checkpoint_needs_the_first_wrapper_ejected(tmp_path):
    model = make_model("open_clip")
    coop = pp.wrap(model, NAMES, n_ctx=2, n_visual_ctx=2)
    pp.save_pretrained(coop, tmp_path)
    with pytest.raises(ConfigError, match="already carries prompts"):
        pp.DualPromptWrapper.from_backbone_checkpoint(model, tmp_path, base_classes=BASE)
    coop.eject()
    dpc = pp.DualPromptWrapper.from_backbone_checkpoint(model, tmp_path, base_classes=BASE)
    assert dpc(images(1)).shape == (1, 4)
    dpc.eject()
    pp.wrap(model, NAMES, n_ctx=2)  # a DPC eject releases the model too


def test_after_eject_a_second_wrapper_trains_prompts_only():
    model = make_model("hf")
    assert all(p.requires_grad for p in model.parameters())
    first = pp.wrap(model, NAMES, n_ctx=2)
    first.eject()
    second = pp.wrap(model, NAMES, n_ctx=2, depth=2, n_visual_ctx=2)
    first.eject()  # a second eject of the old wrapper must not unfreeze what the new one froze
    assert not [n for n, p in model.named_parameters() if p.requires_grad]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prompt_before = second.prompt.ctx.detach().clone()
    opt = torch.optim.SGD(second.trainable_parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(second(images(2)), torch.tensor([0, 3]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(second.prompt.ctx, prompt_before)
    second.eject()
    assert all(p.requires_grad for p in model.parameters())


def test_the_attachment_record_keeps_no_model_alive():
    model = make_model("openai")
    prompted = pp.wrap(model, NAMES, n_ctx=2)
    refs = weakref.ref(model), weakref.ref(prompted)
    del model, prompted
    gc.collect()
    assert refs[0]() is None and refs[1]() is None


# --------------------------------------------------------------------------- 4. a CLIP inside, or a prompted CLIP
class _PromptLearner(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.ctx = nn.Parameter(torch.zeros(4, width))


class _TextEncoder(nn.Module):
    def __init__(self, clip_model: nn.Module):
        super().__init__()
        self.transformer, self.ln_final = clip_model.transformer, clip_model.ln_final
        self.positional_embedding, self.text_projection = clip_model.positional_embedding, clip_model.text_projection


class ViFiLike(nn.Module):
    """ViFi-CLIP's layout: a prompt learner, the user's CLIP as ``clip_model`` and aliases of its towers."""

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        self.prompt_learner = _PromptLearner(clip_model.ln_final.weight.shape[0])
        self.image_encoder = clip_model.visual
        self.text_encoder = _TextEncoder(clip_model)
        self.clip_model = clip_model


def test_wrapping_a_vifi_style_wrapper_names_the_clip_inside():
    vifi = ViFiLike(make_model("openai"))
    expected = r"no backend recognises .*ViFiLike.*CLIP model at 'clip_model'.*pp\.wrap\(model\.clip_model"
    with pytest.raises(UnsupportedModelError, match=expected):
        pp.wrap(vifi, NAMES)
    assert pp.wrap(vifi.clip_model, NAMES, n_ctx=2).model is vifi.clip_model


def test_a_clip_at_an_index_path_is_named_with_get_submodule():
    with pytest.raises(UnsupportedModelError, match=r"CLIP model at '1'.*model\.get_submodule\('1'\)"):
        pp.wrap(nn.Sequential(nn.Identity(), make_model("open_clip")), NAMES)


def test_ivlp_style_clip_with_vpt_shallow_text_prompts_is_refused():
    """IVLP's text layers 1.. replace tokens with their own VPT_shallow (fork_blocks.injecting)."""
    model = make_model("openai")
    into_fork(model.transformer.resblocks, injecting("ResidualAttentionBlock_IVLP"), text_layer=True, n_ctx=2,
              prompt_until=3)
    with pytest.raises(UnsupportedModelError,
                       match=r"'transformer\.resblocks\.1\.VPT_shallow'.*clip\.model\.CLIP.*prompt-plugins convert"):
        pp.wrap(model, NAMES)


def test_maple_style_block_class_is_refused():
    """MaPLe's blocks take [x, compound_prompts, counter] (fork_blocks.maple_like): the probe call fails."""
    model = make_model("openai")
    into_fork(model.visual.transformer.resblocks, maple_like("ResidualAttentionBlock_MaPLe"), text_layer=False)
    with pytest.raises(UnsupportedModelError,
                       match=r"class ResidualAttentionBlock_MaPLe at 'visual\.transformer\.resblocks\.0'.*build_model"):
        pp.wrap(model, NAMES)


@pytest.mark.parametrize("backend", ["openai", "open_clip"])
def test_visual_vpt_parameter_is_refused(backend):
    model = make_model(backend)
    model.visual.VPT = nn.Parameter(torch.randn(2, 64))
    with pytest.raises(UnsupportedModelError, match=r"parameter 'visual\.VPT'.*disabled\(\)"):
        pp.wrap(model, NAMES)
