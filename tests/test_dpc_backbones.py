"""DPC over MaPLe and IVLP (spec backbones.md §7.2, our choice): the parallel prompt clones every learnable tensor of
the backbone (MaPLe's couplers included), base classes run both towers with it, new classes with the backbone's
prompts exactly; on every backend, with eject and save / from_pretrained, and ``wrap(method="dpc", backbone=...)``."""
import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from tiny_models import images, make_model

NAMES = ["red circle", "blue square", "green triangle", "yellow star", "purple ring"]
BASE, NEW = NAMES[:3], NAMES[3:]
BACKBONES = {
    "maple": dict(method="maple", depth=3, init_std=0.2),
    "ivlp": dict(method="ivlp", n_ctx=2, depth=3, n_visual_ctx=2, init_std=0.2),
}
TENSORS = {
    "maple": ["ctx", "compound_prompts_text", "proj.weight", "proj.bias", "compound_prompt_projections.0.weight",
              "compound_prompt_projections.0.bias", "compound_prompt_projections.1.weight",
              "compound_prompt_projections.1.bias"],
    "ivlp": ["ctx", "text_deep", "visual", "visual_deep"],
}


def _trained_backbone(model, kind):
    prompted = pp.wrap(model, NAMES, **BACKBONES[kind])
    opt = torch.optim.SGD(prompted.trainable_parameters(), lr=0.1)
    F.cross_entropy(prompted(images(3), BASE), torch.tensor([0, 1, 2])).backward()
    opt.step()
    return prompted


def _step(wrapper):
    opt = torch.optim.SGD(wrapper.trainable_parameters(), lr=0.5)
    loss = F.cross_entropy(wrapper(images(3, seed=4), classes=BASE), torch.tensor([0, 1, 2]))
    opt.zero_grad()
    loss.backward()
    opt.step()


@pytest.mark.parametrize("kind", sorted(BACKBONES))
def test_new_classes_keep_the_backbone_exactly(backend_name, kind, tmp_path):
    model = make_model(backend_name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prompted = _trained_backbone(model, kind)
    x = images(2)
    with torch.no_grad():
        backbone_new, backbone_base = prompted(x, NEW), prompted(x, BASE)
    wrapper = pp.DualPromptWrapper(prompted, BASE)
    assert wrapper.tensor_names == TENSORS[kind] == prompted.prompt.prompt_tensor_names()
    _step(wrapper)
    with torch.no_grad():
        assert torch.equal(wrapper(x, classes=NEW), backbone_new)  # P in both towers, bit for bit
        assert not torch.allclose(wrapper(x, classes=BASE), backbone_base, atol=1e-3)
        mixed = wrapper(x)
        torch.testing.assert_close(mixed[:, 3:], backbone_new, atol=1e-5, rtol=0)
        assert torch.equal(wrapper.backbone_logits(x, NEW), backbone_new)
    moved = [n for n in TENSORS[kind] if not torch.equal(wrapper.route_tensors("base")[n], wrapper.frozen_tensors()[n])]
    assert set(moved) == set(TENSORS[kind])  # every cloned tensor trains, the couplers too
    with pytest.raises(pp.ConfigError, match="route="):
        wrapper.encode_image(x)

    expected = wrapper(x).detach()
    pp.save_pretrained(wrapper, tmp_path / "dpc")
    assert wrapper.eject() is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not m._forward_pre_hooks for m in model.modules())
    loaded = pp.from_pretrained(model, tmp_path / "dpc")
    assert loaded.target.method == kind and loaded.base_classnames == BASE
    assert torch.equal(loaded(x), expected)
    loaded.eject()


def test_wrap_dpc_over_any_registered_backbone(classnames):
    model = make_model("openai")
    dpc = pp.wrap(model, classnames, method="dpc", backbone="maple", depth=2, coupler_init="independent",
                  base_classes=classnames[:2], weight_base=0.3)
    assert dpc.target.method == "maple" and dpc.target.template == "of a {}." and dpc.weight_base == 0.3
    assert dpc.tensor_names[:2] == ["ctx", "compound_prompts_text"]
    dpc.eject()
    ivlp = pp.wrap(model, classnames, method="dpc", backbone="ivlp", depth=2, base_classes=classnames[:2])
    assert ivlp.target.method == "ivlp" and ivlp.tensor_names == ["ctx", "text_deep", "visual", "visual_deep"]
    ivlp.eject()
    coop = pp.wrap(model, classnames, method="dpc", n_ctx=2)  # backbone="coop": as before
    assert coop.target.method == "coop" and coop.tensor_names == ["ctx"]
    coop.eject()
    with pytest.raises(pp.ConfigError, match=r"unknown option\(s\) \['coupler_init'\] for method 'dpc'"):
        pp.wrap(model, classnames, method="dpc", backbone="ivlp", coupler_init="shared")
    for bad in ("dpc", "mapel", 3):
        with pytest.raises(pp.ConfigError, match=rf"backbone={bad!r} is not a method DPC can be built over.*'maple'"):
            pp.wrap(model, classnames, method="dpc", backbone=bad)
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_recipe_dpc_maple_wraps_dpc_over_maple(classnames):
    recipe = pp.get_recipe("dpc_maple").replace(depth=3, visual_depth=3)
    options = recipe.wrap_options()
    assert options["backbone"] == "maple" and options["coupler_init"] == "shared"
    dpc = pp.wrap(make_model("openai"), classnames, base_classes=classnames[:2], **options)
    assert dpc.target.method == "maple" and dpc.target.prompt.depth == 3 and dpc.weight_base == 0.2
    assert "not released; our choice" in recipe.notes.lower()


def test_example_adds_dpc_stage2_to_a_maple_loop(capsys):
    """``examples/maple_dpc_stage2.py`` runs (tiny CLIP, seconds) and its new classes keep the MaPLe logits."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "maple_dpc_stage2.py"
    spec = importlib.util.spec_from_file_location("maple_dpc_stage2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "new classes unchanged: True" in capsys.readouterr().out
    assert module.dpc.target is module.maple and module.dpc.target.method == "maple"
    assert sorted(module.dpc.tensor_names) == sorted(module.maple.prompt.prompt_tensor_names())


def test_maple_and_ivlp_recipes_are_the_released_numbers(classnames):
    expected = {  # name: (method, lr, epochs, batch, n_ctx, depth, n_visual_ctx, visual_depth)
        "maple": ("maple", 0.0035, 5, 4, 2, 9, 2, 9), "maple_cross": ("maple", 0.0026, 2, 4, 2, 3, 2, 3),
        "ivlp_maple": ("ivlp", 0.0035, 5, 4, 2, 12, 2, 12),
        "ivlp_maple_language": ("ivlp", 0.0025, 5, 4, 4, 12, 0, None),
        "ivlp_src": ("ivlp", 0.0025, 20, 4, 4, 9, 4, 9), "dpc_maple": ("dpc", 0.002, 20, 4, 2, 9, 2, 9)}
    for name, numbers in expected.items():
        r = pp.get_recipe(name)
        assert (r.method, r.lr, r.epochs, r.batch_size, r.n_ctx, r.depth, r.n_visual_ctx, r.visual_depth) == numbers
        assert (r.optimizer, r.momentum, r.weight_decay, r.schedule) == ("sgd", 0.9, 5e-4, "dassl_cosine")
        assert (r.warmup_epochs, r.warmup_type, r.warmup_lr, r.ctx_init) == (1, "constant", 1e-5, "a photo of a")
        assert "@" in r.source and len(r.source.split("@")[1].split(":")[0]) == 40
    assert (pp.get_recipe("dpc_maple").top_k, pp.get_recipe("dpc_maple").weight_base) == (8, 0.2)
    for name in ("maple", "ivlp_maple", "ivlp_maple_language"):
        tiny = pp.get_recipe(name).replace(depth=3, visual_depth=None if name.endswith("language") else 3)
        options = tiny.wrap_options()
        prompted = pp.wrap(make_model("openai"), classnames, **options)
        assert prompted.method == options["method"] == pp.get_recipe(name).method
        assert prompted.template == ("{}." if name.endswith("language") else "of a {}.")
        if name == "maple":
            assert options["coupler_init"] == "shared" and prompted.prompt.depth == 3
        else:
            assert prompted.prompt.n_visual_ctx == options["n_visual_ctx"]


def test_ivlp_adapter_round_trip(backend_name, classnames, tmp_path):
    model = make_model(backend_name)
    prompted = pp.wrap(model, classnames, method="ivlp", depth=2, init_std=0.2)
    x = images(2)
    expected = prompted(x).detach()
    pp.save_pretrained(prompted, tmp_path)
    prompted.eject()
    loaded = pp.from_pretrained(model, tmp_path)
    assert loaded.method == "ivlp" and loaded.template == "of a {}." and torch.equal(loaded(x), expected)
