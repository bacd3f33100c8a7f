"""``train --method promptkd --teacher RUN --teacher-backbone SPEC`` on a tiny CoOp-layout data set: the teacher on
its own (wider) CLIP, the unlabeled items (the whole train split, or base_only), the released best_val as an option
and across --resume, DPC's stage 2 over the PromptKD run, and every bad flag refused before any work."""
import json

import pytest
import torch

pytest.importorskip("clip")
pytest.importorskip("PIL")

import data_layouts as layouts  # noqa: E402
import prompt_plugins as pp  # noqa: E402
from prompt_plugins.checkpoint import read_adapter  # noqa: E402
from prompt_plugins.cli import main  # noqa: E402
from promptkd_files import make_clip  # noqa: E402
from tiny_models import make_openai  # noqa: E402

TINY = ["--epochs", "1", "--warmup-epochs", "0", "--batch-size", "4", "--shots", "2", "--quiet"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """5 classes (3 base / 2 new), 3 train items each; a student CLIP file, a wider teacher CLIP file and a CoOp
    teacher run trained on the teacher CLIP."""
    tmp = tmp_path_factory.mktemp("kd_world")
    root = layouts.coop_json(tmp / "data", n_classes=5, train=3, val=1, test=2)
    student, teacher = tmp / "student.pt", tmp / "teacher.pt"
    torch.save(make_openai().state_dict(), student)
    torch.save(make_clip(96, 48, seed=7, fp16_values=False).state_dict(), teacher)
    data = ["--dataset", "oxford_pets", "--root", str(root), "--backbone", str(student)]
    teach = ["--dataset", "oxford_pets", "--root", str(root), "--backbone", str(teacher)]
    assert main(["train", *teach, "--out", str(tmp / "teacher"), "--seeds", "1", "--n-ctx", "2", *TINY]) == 0
    kd = ["--method", "promptkd", "--teacher", str(tmp / "teacher"), "--teacher-backbone", str(teacher)]
    return tmp, data, kd


def _eval(tmp, adapter, name):
    out = tmp / f"{name}.json"
    assert main(["eval", "--adapter", str(adapter), "--json", str(out), "--quiet"]) == 0
    return json.loads(out.read_text())


def test_promptkd_distils_on_every_train_item_and_dpc_keeps_its_new_accuracy(world, capsys):
    tmp, data, kd = world
    assert main(["train", *data, *kd, "--out", str(tmp / "kd"), *TINY]) == 0
    out = capsys.readouterr().out
    assert "15 training items; promptkd" in out and "transductive" in out  # 5 classes x 3: base and new
    config, state = read_adapter(tmp / "kd" / "seed1")
    assert config.method == "promptkd" and config.run["train_items"] == 15
    assert config.run["teacher"] == str(tmp / "teacher") and config.prompt["teacher_width"] == 48
    assert state["prompt.teacher_features"].shape == (5, 48)  # every class, computed once
    kd_result = _eval(tmp, tmp / "kd" / "seed1", "kd")
    assert main(["train", *data, "--method", "dpc", "--from", str(tmp / "kd"), "--recipe", "dpc_promptkd",
                 "--out", str(tmp / "dpc"), *TINY]) == 0
    dpc = _eval(tmp, tmp / "dpc" / "seed1", "dpc")
    assert dpc["method"] == "dpc" and dpc["new"] == kd_result["new"]  # per class too


def test_base_only_is_inductive(world, capsys):
    tmp, data, kd = world
    assert main(["train", *data, *kd, "--out", str(tmp / "inductive"), "--set",
                 'method_options={"unlabeled": "base_only"}', *TINY]) == 0
    assert "9 training items" in capsys.readouterr().out  # 3 base classes x 3
    config, _ = read_adapter(tmp / "inductive" / "seed1")
    assert config.run["recipe"]["method_options"] == {"temperature": 1.0, "kd_weight": 1000.0, "reduction": "released",
                                                      "unlabeled": "base_only", "selection": "last"}  # merged


def test_best_val_survives_resume(world, capsys):
    tmp, data, kd = world
    args = [*data, *kd, "--epochs", "3", "--warmup-epochs", "0", "--batch-size", "4", "--shots", "2", "--quiet",
            "--set", 'method_options={"selection": "best_val"}']
    assert main(["train", *args, "--out", str(tmp / "whole")]) == 0
    assert "best_val: epoch" in capsys.readouterr().out
    assert main(["train", *args, "--out", str(tmp / "parts"), "--stop-after", "2"]) == 3
    assert main(["train", *args, "--out", str(tmp / "parts"), "--resume"]) == 0
    _, whole = read_adapter(tmp / "whole" / "seed1")
    _, parts = read_adapter(tmp / "parts" / "seed1")
    assert whole.keys() == parts.keys() and all(torch.equal(whole[k], parts[k]) for k in whole)


BAD = [
    (["--teacher", "T"], "--teacher is for --method promptkd, not coop"),
    (["--method", "promptkd"], "--method promptkd distils from a teacher: pass --teacher"),
    (["--method", "dpc", "--from", "T", "--teacher-backbone", "x.pt"], "--teacher-backbone is for --method promptkd"),
    (["--method", "promptkd", "--teacher", "nowhere"], "--teacher 'nowhere' does not exist"),
    (["--method", "promptkd", "--teacher", "OTHER"], "was saved for other classes: it has no ['green bar'"),
    (["--method", "promptkd", "--teacher", "DPC"], "is a dpc adapter; a teacher is a PromptedCLIP adapter"),
    (["--method", "promptkd", "--teacher", "T", "--teacher-backbone", "missing.pt"], "is not a file on disk"),
    (["--method", "promptkd", "--teacher", "T", "--set", 'method_options={"selection": "best"}'],
     "selection='best' (str) is not valid: expected 'last' or 'best_val'"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_teacher_flags_fail_before_any_work(world, tmp_path, monkeypatch, capsys, args, message):
    import prompt_plugins.runs.backbone as backbone_module

    tmp, data, _ = world
    other = pp.wrap(make_openai(), ["red circle", "blue square"], method="coop", n_ctx=2)
    pp.save_pretrained(other, tmp_path / "other")
    dual = pp.DualPromptWrapper(pp.wrap(make_openai(), ["red circle", "blue square"], method="coop", n_ctx=2))
    pp.save_pretrained(dual, tmp_path / "dpc")
    names = {"T": str(tmp / "teacher"), "OTHER": str(tmp_path / "other"), "DPC": str(tmp_path / "dpc")}
    monkeypatch.setattr(backbone_module, "load_backbone", lambda *a, **k: pytest.fail("work started"))
    argv = ["train", *data, "--out", str(tmp_path / "out"), "--quiet", *[names.get(a, a) for a in args]]
    if "--method" in args and "dpc" in args:
        argv[argv.index("--from") + 1] = str(tmp / "teacher")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("prompt-plugins train: error:") and message in err, err
    assert not (tmp_path / "out" / "seed1").exists()
