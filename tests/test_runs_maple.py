"""``train --method maple`` / ``--method ivlp`` with the released recipes, then DPC's stage 2 from those runs
(``train --method dpc --from RUN``): new-class accuracy equal to the stage-1 run's, the couplers cloned and trained."""
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


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("maple_world")
    root = layouts.coop_json(tmp / "data", n_classes=5, train=3, val=1, test=2)
    backbone = tmp / "tiny.pt"
    torch.save(make_openai().state_dict(), backbone)
    return tmp, ["--dataset", "oxford_pets", "--root", str(root), "--backbone", str(backbone)]


def _eval(tmp, adapter, name):
    out = tmp / f"{name}.json"
    assert main(["eval", "--adapter", str(adapter), "--json", str(out), "--per-class", "--quiet"]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("method, recipe", [("maple", None), ("ivlp", "ivlp_maple")])
def test_train_then_dpc_stage2_keeps_new_accuracy(world, method, recipe):
    tmp, data = world
    run = tmp / method
    extra = ["--recipe", recipe] if recipe else []
    assert main(["train", *data, "--method", method, *extra, "--out", str(run), *TINY]) == 0
    config = json.loads((run / "seed1" / "adapter_config.json").read_text())
    assert config["method"] == method and config["template"] == "of a {}."
    assert config["run"]["recipe"]["name"] == (recipe or "maple") and config["run"]["recipe"]["depth"] == 3  # capped
    if method == "maple":
        assert config["prompt"]["type"] == "maple" and config["prompt"]["coupler_init"] == "shared"
    stage1 = _eval(tmp, run / "seed1", f"{method}1")
    assert stage1["method"] == method and stage1["base"]["items"] == 6

    assert main(["train", *data, "--method", "dpc", "--recipe", "dpc_maple", "--from", str(run),
                 "--out", str(tmp / f"dpc_{method}"), *TINY]) == 0
    dpc = json.loads((tmp / f"dpc_{method}" / "seed1" / "adapter_config.json").read_text())
    assert dpc["method"] == "dpc" and dpc["inner"]["method"] == method
    stage2 = _eval(tmp, tmp / f"dpc_{method}" / "seed1", f"dpc_{method}1")
    assert stage2["new"] == stage1["new"]  # new classes run the stage-1 prompts exactly, per class too
    state = load_file(str(tmp / f"dpc_{method}" / "seed1" / "adapter_model.safetensors"))
    key = "compound_prompt_projections.0.weight" if method == "maple" else "visual"
    assert not torch.equal(state[f"dpc.X.{key}"], state[f"dpc.P.{key}"])  # the visual side trained too


def test_dpc_from_a_dpc_run_is_refused(world, capsys):
    tmp, data = world
    if not (tmp / "dpc_maple" / "seed1").is_dir():
        pytest.skip("needs the DPC run of test_train_then_dpc_stage2_keeps_new_accuracy")
    assert main(["train", *data, "--method", "dpc", "--from", str(tmp / "dpc_maple"), "--out", str(tmp / "dpc2"),
                 *TINY]) == 2
    assert "is a PromptedDualWrapper adapter; DPC's stage 2 starts from a prompt adapter" in capsys.readouterr().err

