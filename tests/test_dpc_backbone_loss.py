"""DPC stage 2 with the backbone's own loss beside the hard-negative objective (issue 20 §2: an option, off by default
as released): ``wrapper.route_view("base")`` lets a loss written for a ``PromptedCLIP`` train the parallel prompt,
and ``train --method dpc --set method_options={"backbone_loss": true}`` runs the stage-1 method's loss with its
run's recipe."""
import json

import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins.errors import ConfigError
from tiny_models import images, make_model

NAMES = ["red circle", "blue square", "green triangle", "yellow star"]
BASE = NAMES[:2]


def test_the_route_view_is_the_wrapper_on_one_route(backend_name):
    prompted = pp.wrap(make_model(backend_name), NAMES, method="ivlp", n_ctx=2, depth=2, n_visual_ctx=2)
    wrapper = pp.DualPromptWrapper(prompted, BASE)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # the parallel prompt moved away from P (not by a constant: LayerNorm removes that)
        for p in wrapper.trainable_parameters():
            p.add_(torch.randn(p.shape, generator=g))
    view, x = wrapper.route_view("base"), images(2)
    torch.testing.assert_close(view.encode_text(BASE), wrapper.encode_text(BASE, route="base"))
    torch.testing.assert_close(view(x, BASE), wrapper(x, classes=BASE, route="base"))
    assert not torch.allclose(view(x, BASE), prompted(x, BASE))  # not P's logits
    with view.disabled():  # the frozen zero-shot CLIP, as the backbone losses expect
        torch.testing.assert_close(view.encode_image(x), prompted.encode_image(x))
    assert view.backend is prompted.backend and view.classnames == NAMES
    with pytest.raises(ConfigError, match="route='side'"):
        wrapper.route_view("side")


def test_a_promptsrc_loss_trains_the_parallel_prompt_only(backend_name):
    prompted = pp.wrap(make_model(backend_name), NAMES, method="promptsrc", n_ctx=2, ctx_init=None, depth=2,
                       n_visual_ctx=2, visual_depth=2)
    wrapper = pp.DualPromptWrapper(prompted, BASE)
    loss = pp.PromptSRCLoss().from_model(wrapper.route_view("base"), images(3), torch.tensor([0, 1, 0]),
                                         classes=[0, 1])
    loss.backward()
    grads = [p.grad for p in wrapper.trainable_parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in prompted.prompt.parameters())  # P stays frozen
    ce = F.cross_entropy(wrapper(images(3), classes=[0, 1], route="base"), torch.tensor([0, 1, 0]))
    assert float(loss) > float(ce)  # the self-regulating terms are in it


pytest.importorskip("PIL")
import data_layouts as layouts  # noqa: E402
from prompt_plugins.cli import main  # noqa: E402
from tiny_models import make_openai  # noqa: E402

TINY = ["--epochs", "1", "--warmup-epochs", "0", "--batch-size", "2", "--shots", "2", "--quiet"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backbone-loss")
    root = layouts.coop_json(tmp / "data", n_classes=5, train=3, val=1, test=2)
    backbone = tmp / "tiny.pt"
    torch.save(make_openai().state_dict(), backbone)
    return tmp, ["--dataset", "oxford_pets", "--root", str(root), "--backbone", str(backbone)]


def _x(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "seed1" / "adapter_model.safetensors"))["dpc.X.ctx"]


def test_train_dpc_with_and_without_the_backbone_loss(world, capsys):
    tmp, data = world
    assert main(["train", *data, "--method", "kgcoop", "--out", str(tmp / "kg"), *TINY]) == 0
    runs = {}
    for name, extra in (("released", []), ("with", ["--set", 'method_options={"backbone_loss": true}'])):
        capsys.readouterr()
        assert main(["train", *data, "--method", "dpc", "--from", str(tmp / "kg"), "--out", str(tmp / name),
                     *TINY, *extra]) == 0
        out = capsys.readouterr().out
        assert ("the kgcoop backbone's own loss (weight 1) runs on the parallel prompt" in out) == (name == "with")
        runs[name] = _x(tmp / name)
    assert not torch.equal(runs["released"], runs["with"])  # the extra term changed the steps
    for name in runs:  # new classes keep P either way
        out = tmp / f"{name}.json"
        assert main(["eval", "--adapter", str(tmp / name / "seed1"), "--json", str(out), "--quiet"]) == 0
    kg = tmp / "kg.json"
    assert main(["eval", "--adapter", str(tmp / "kg" / "seed1"), "--json", str(kg), "--quiet"]) == 0
    new = json.loads(kg.read_text())["new"]
    assert all(json.loads((tmp / f"{n}.json").read_text())["new"] == new for n in runs)


def test_unknown_stage_two_options_are_refused_before_any_work(world, capsys):
    tmp, data = world
    assert main(["train", *data, "--method", "coop", "--out", str(tmp / "coop"), *TINY]) == 0
    code = main(["train", *data, "--method", "dpc", "--from", str(tmp / "coop"), "--out", str(tmp / "bad"), *TINY,
                 "--set", 'method_options={"backbone_los": true}'])
    err = capsys.readouterr().err
    assert code != 0 and "backbone_los" in err and "stage-2 options" in err
    assert not (tmp / "bad" / "seed1" / "adapter_config.json").exists()
