"""``train --method promptsrc | kgcoop`` on a tiny CoOp-layout data set: train -> eval, the recipe notes (depth
capped, KgCoOp's OxfordPets template), GPA wired through ``Objective.end_epoch`` (the saved prompts are the
aggregate; ``--resume`` continues its sums and ends equal to an uninterrupted run), DPC stage 2 ``--from`` either
run keeping the stage-1 new accuracy, and bad method options refused before any work."""
import json

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("clip")
pytest.importorskip("PIL")

import data_layouts as layouts  # noqa: E402
from prompt_plugins.cli import main  # noqa: E402
from tiny_models import make_openai  # noqa: E402

TINY = ["--epochs", "1", "--warmup-epochs", "0", "--batch-size", "2", "--shots", "2", "--quiet"]
THREE = ["--epochs", "3", "--warmup-epochs", "1", "--batch-size", "2", "--shots", "2", "--quiet"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backbones")
    root = layouts.coop_json(tmp / "data", n_classes=5, train=3, val=1, test=2)
    backbone = tmp / "tiny.pt"
    torch.save(make_openai().state_dict(), backbone)
    return tmp, ["--dataset", "oxford_pets", "--root", str(root), "--backbone", str(backbone)]


def _eval(tmp, adapter, name):
    out = tmp / f"{name}.json"
    assert main(["eval", "--adapter", str(adapter), "--json", str(out), "--per-class", "--quiet"]) == 0
    return json.loads(out.read_text())


def _weights(folder):
    return load_file(str(folder / "seed1" / "adapter_model.safetensors"))


def _gpa(mean, std):
    return ["--set", "method_options=" + json.dumps({"gpa_mean": mean, "gpa_std": std})]


@pytest.mark.parametrize("method", ["promptsrc", "kgcoop"])
def test_train_eval_and_dpc_from_the_run(world, capsys, method):
    tmp, data = world
    assert main(["train", *data, "--method", method, "--out", str(tmp / method), *TINY]) == 0
    out = capsys.readouterr().out
    if method == "promptsrc":
        assert "depth 9 -> 3" in out and "GPA mean 15, std 1 over 1 epochs" in out
    else:
        assert "frozen target 'a photo of a {}, a type of pet.' (CoOp's for OxfordPets)" in out
    config = json.loads((tmp / method / "seed1" / "adapter_config.json").read_text())
    assert config["method"] == method and config["run"]["recipe"]["name"] == method
    stage1 = _eval(tmp, tmp / method / "seed1", method)
    assert stage1["method"] == method and stage1["base"]["items"] == 6
    dpc = tmp / f"dpc-{method}"
    assert main(["train", *data, "--method", "dpc", "--recipe", "dpc_promptsrc" if method == "promptsrc" else "dpc",
                 "--from", str(tmp / method), "--out", str(dpc), *TINY]) == 0
    stage2 = _eval(tmp, dpc / "seed1", f"dpc-{method}")
    assert stage2["method"] == "dpc" and stage2["new"] == stage1["new"]  # new classes keep P: identical
    state = _weights(dpc)
    names = {k.split(".", 2)[2] for k in state if k.startswith("dpc.X.")}
    assert names == ({"ctx", "text_deep", "visual", "visual_deep"} if method == "promptsrc" else {"ctx"})
    assert not torch.equal(state["dpc.X.ctx"], state["dpc.P.ctx"])


def test_gpa_is_what_the_adapter_saves(world):
    """A Gaussian that puts all its weight on the last epoch saves exactly the no-GPA prompts; a wide one saves
    their average over epochs, which differs."""
    tmp, data = world
    runs = {}
    for name, extra in (("off", ["--set", 'method_options={"gpa": false}']), ("last", _gpa(3, 0.01)),
                        ("wide", _gpa(2, 1))):
        assert main(["train", *data, "--method", "promptsrc", "--out", str(tmp / f"gpa-{name}"), *THREE, *extra]) == 0
        runs[name] = _weights(tmp / f"gpa-{name}")
    assert all(torch.equal(runs["off"][k], runs["last"][k]) for k in runs["off"])
    assert not torch.equal(runs["off"]["prompt.ctx"], runs["wide"]["prompt.ctx"])


def test_promptsrc_resume_equals_an_uninterrupted_run(world, capsys):
    tmp, data = world
    extra = ["--method", "promptsrc", *THREE, *_gpa(2, 1)]
    whole, parts = tmp / "src-whole", tmp / "src-parts"
    assert main(["train", *data, "--out", str(whole), *extra]) == 0
    assert main(["train", *data, "--out", str(parts), "--stop-after", "2", *extra]) == 3
    state = torch.load(parts / "seed1" / "training_state.pt", weights_only=True)
    assert state["objective"]["gpa"]["epochs_done"] == 2  # the running sums travel with the training state
    assert main(["train", *data, "--out", str(parts), "--resume", *extra]) == 0
    a, b = _weights(whole), _weights(parts)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert main(["train", *data, "--out", str(tmp / "src-other"), "--stop-after", "1", *extra]) == 3
    capsys.readouterr()
    other = ["--method", "promptsrc", *THREE[2:], "--epochs", "4", *_gpa(2, 1)]
    assert main(["train", *data, "--out", str(tmp / "src-other"), "--resume", *other]) == 2
    assert "epochs: 3 recorded vs 4 now" in capsys.readouterr().err  # the run folder's record refuses it first
    # past that check (--allow-mixed), the seed's training state and its aggregation state refuse it too
    assert main(["train", *data, "--out", str(tmp / "src-other"), "--resume", "--allow-mixed", *other]) == 2
    assert "written by a run with other settings" in capsys.readouterr().err


@pytest.mark.parametrize("method, options, message", [
    ("promptsrc", {"bogus": 1}, "unknown option(s) ['bogus']"),
    ("promptsrc", {"gpa_std": 0}, "gpa_std=0"),
    ("kgcoop", {"weight": -1}, "weight=-1"),
    ("kgcoop", {"template": "no slot"}, "template 'no slot' must hold exactly one"),
])
def test_bad_method_options_fail_before_any_work(world, tmp_path, monkeypatch, capsys, method, options, message):
    import prompt_plugins.runs.backbone as backbone_module

    _, data = world
    monkeypatch.setattr(backbone_module, "load_backbone", lambda *a, **k: pytest.fail("work started"))
    assert main(["train", *data, "--method", method, "--out", str(tmp_path / "out"), *TINY, "--set",
                 "method_options=" + json.dumps(options)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prompt-plugins train: error:") and message in err, err
