"""Run folders that cannot mix or lie (issue 22 §2): ``RUN/run.json`` and the seeds' records refuse a later ``train``
with other settings, name the backbone by path and fingerprint, and ``eval`` / ``benchmark`` / ``inspect`` never
merge, skip or double what they read. Ids start with the kind of behaviour each case had before (``bad_cases``)."""
import json
import shlex
import shutil

import pytest
import torch

pytest.importorskip("clip")
pytest.importorskip("PIL")

import data_layouts as layouts  # noqa: E402
from prompt_plugins.cli import main  # noqa: E402
from bad_cases import tree  # noqa: E402
from tiny_models import make_openai  # noqa: E402

TINY = ["--epochs", "2", "--warmup-epochs", "0", "--batch-size", "2", "--shots", "2", "--n-ctx", "2", "--quiet"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A CoOp-layout data set (5 classes: 3 base / 2 new), two tiny CLIP files with other weights, and a CoOp run
    of seeds 1 and 2 (``RUN``, copied by the tests that change it)."""
    tmp = tmp_path_factory.mktemp("runs")
    root = layouts.coop_json(tmp / "data", n_classes=5, train=3, val=1, test=2)
    for name, seed in (("tiny.pt", 0), ("other.pt", 1)):
        torch.save(make_openai(seed=seed).state_dict(), tmp / name)
    data = ["--dataset", "oxford_pets", "--root", str(root), "--backbone", str(tmp / "tiny.pt")]
    assert main(["train", *data, "--out", str(tmp / "run"), "--seeds", "1", "2", *TINY]) == 0
    return tmp, data


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _copy(world, tmp_path):
    shutil.copytree(world[0] / "run", tmp_path / "run")
    return tmp_path / "run"


def _other_root(world, tmp_path):
    shutil.copytree(world[0] / "data", tmp_path / "data2")
    return str(tmp_path / "data2")


# ---------------------------------------------------------------------------- train into an existing run
@pytest.mark.parametrize("change, words", [
    pytest.param(["--epochs", "3"], ("epochs: 2 recorded vs 3 now",), id="silent-train-other-epochs"),
    pytest.param(["--lr", "0.5"], ("lr: 0.002 recorded vs 0.5 now",), id="silent-train-other-lr"),
    pytest.param(["--shots", "3"], ("shots: 2 recorded vs 3 now",), id="silent-train-other-shots"),
    pytest.param(["--method", "ivlp"], ("method: 'coop' recorded vs 'ivlp' now",), id="silent-train-other-method"),
    pytest.param(["BACKBONE"], ("backbone:", "tiny.pt (sha256:", "recorded vs", "other.pt (sha256:"),
                 id="silent-train-other-backbone"),
    pytest.param(["ROOT"], ("data.root:", "data2", "recorded vs"), id="silent-train-other-data-root"),
])
def test_train_with_other_settings_than_the_run_is_refused(world, tmp_path, capsys, change, words):
    tmp, data = world
    run = _copy(world, tmp_path)
    before = tree(run)
    argv = ["train", *data, "--out", run, "--seeds", "3", *TINY]
    if change == ["BACKBONE"]:
        argv[argv.index("--backbone") + 1] = tmp / "other.pt"
    elif change == ["ROOT"]:
        argv[argv.index("--root") + 1] = _other_root(world, tmp_path)
    else:
        argv += change
    code, out, err = _run(argv, capsys)
    assert code == 2 and "holds seeds [1, 2] trained with other settings" in err and "--allow-mixed" in err, err
    assert all(w in err for w in words), err
    assert "epoch 1" not in out + err
    assert tree(run) == before  # no seed3 folder, run.json as it was


def test_new_allow_mixed_adds_the_seed_and_records_it(world, tmp_path, capsys):
    _, data = world
    run = _copy(world, tmp_path)
    code, out, err = _run(["train", *data, "--out", run, "--seeds", "3", *TINY, "--epochs", "3", "--allow-mixed"],
                          capsys)
    assert code == 0 and "--allow-mixed: seeds [3] differ" in out, out + err
    record = json.loads((run / "run.json").read_text())
    assert record["recipe"]["epochs"] == 2  # the run's own settings stay
    assert record["mixed"] == [{"seeds": [3], "differences": ["epochs: 2 recorded vs 3 now"]}]
    assert json.loads((run / "seed3" / "adapter_config.json").read_text())["run"]["epochs"] == 3


def test_new_a_seed_with_the_same_settings_joins_the_run(world, tmp_path, capsys):
    _, data = world
    run = _copy(world, tmp_path)
    record = json.loads((run / "run.json").read_text())
    code, out, err = _run(["train", *data, "--out", run, "--seeds", "3", *TINY], capsys)
    assert code == 0 and (run / "seed3" / "adapter_config.json").is_file(), err
    after = json.loads((run / "run.json").read_text())
    assert {k: v for k, v in after.items() if k != "commands"} == {k: v for k, v in record.items() if k != "commands"}
    assert after["commands"]["1"] == record["commands"]["1"] and "--seeds 3" in after["commands"]["3"]


def test_new_run_record_names_the_settings(world):
    tmp, _ = world
    record = json.loads((tmp / "run" / "run.json").read_text())
    assert (record["method"], record["shots"], record["recipe_name"]) == ("coop", 2, "coop")
    assert record["overrides"]["epochs"] == 2 and record["recipe"]["n_ctx"] == 2
    assert record["data"]["dataset"] == "OxfordPets" and record["data"]["root"] == str((tmp / "data").resolve())
    assert record["data"]["base_classes"] == ["red circle", "blue square", "green bar"]
    assert record["backbone"]["path"] == str((tmp / "tiny.pt").resolve())
    assert record["backbone"]["fingerprint"].startswith("sha256:")
    assert record["commands"]["1"].startswith("prompt-plugins train --dataset oxford_pets")
    assert record["commands"]["2"] == record["commands"]["1"] and "--seeds 1 2" in record["commands"]["1"]
    seed = json.loads((tmp / "run" / "seed1" / "adapter_config.json").read_text())["run"]
    assert seed["backbone_fingerprint"] == record["backbone"]["fingerprint"]
    assert seed["backbone_path"] == record["backbone"]["path"]


def test_silent_old_run_folder_is_checked_against_its_seeds_records(world, tmp_path, capsys):
    _, data = world
    run = _copy(world, tmp_path)
    (run / "run.json").unlink()  # a run folder written before run records
    for seed in (1, 2):  # ... whose seed records lack the backbone fields too
        path = run / f"seed{seed}" / "adapter_config.json"
        config = json.loads(path.read_text())
        for key in ("backbone_path", "backbone_fingerprint", "classnames_file", "splits_path"):
            config["run"].pop(key)
        path.write_text(json.dumps(config))
    before = tree(run)
    code, out, err = _run(["train", *data, "--out", run, "--seeds", "3", *TINY, "--epochs", "3"], capsys)
    assert code == 2 and "seed1/adapter_config.json's 'run' section" in err and "epochs: 2 recorded vs 3 now" in err
    assert tree(run) == before
    code, out, err = _run(["train", *data, "--out", run, "--seeds", "3", *TINY], capsys)
    assert code == 0, err
    assert "has no run.json (written before run records): its settings are derived from" in out
    assert "the backbone of its seeds is not checked" in out
    assert "derived from" in json.loads((run / "run.json").read_text())["note"]


# ---------------------------------------------------------------------------- the backbone of a record
def test_unclear_eval_from_another_folder_finds_the_recorded_backbone(world, tmp_path, monkeypatch, capsys):
    tmp, _ = world
    shutil.copy(tmp / "tiny.pt", tmp_path / "clip.pt")
    monkeypatch.chdir(tmp_path)
    data = ["--dataset", "oxford_pets", "--root", tmp / "data", "--backbone", "clip.pt"]  # relative, as typed
    assert main([str(a) for a in ["train", *data, "--out", "run", *TINY]]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = _run(["eval", "--adapter", tmp_path / "run" / "seed1", "--json", "r.json", "--quiet"], capsys)
    assert code == 0, err
    assert json.loads((elsewhere / "r.json").read_text())["backbone"] == str(tmp_path / "clip.pt")


@pytest.mark.parametrize("case", [pytest.param("moved", id="silent-eval-another-file-under-the-recorded-name"),
                                  pytest.param("replaced", id="silent-eval-recorded-path-replaced")])
def test_eval_refuses_another_clip_found_for_the_record(world, tmp_path, monkeypatch, capsys, case):
    tmp, _ = world
    train_dir, eval_dir = tmp_path / "a", tmp_path / "b"
    for d in (train_dir, eval_dir):
        d.mkdir()
    shutil.copy(tmp / "tiny.pt", train_dir / "clip.pt")
    monkeypatch.chdir(train_dir)
    data = ["--dataset", "oxford_pets", "--root", tmp / "data", "--backbone", "clip.pt"]
    assert main([str(a) for a in ["train", *data, "--out", tmp_path / "run", *TINY]]) == 0
    if case == "moved":  # the recorded path is gone; another clip.pt where eval runs
        (train_dir / "clip.pt").unlink()
        shutil.copy(tmp / "other.pt", eval_dir / "clip.pt")
        monkeypatch.chdir(eval_dir)
    else:
        shutil.copy(tmp / "other.pt", train_dir / "clip.pt")
    before = tree(tmp_path / "run")
    code, out, err = _run(["eval", "--adapter", tmp_path / "run" / "seed1", "--quiet"], capsys)
    assert code == 2 and "was trained on the backbone" in err and "is another CLIP" in err, err
    assert str(train_dir / "clip.pt") in err and "pass --backbone with the CLIP it was trained on" in err
    assert ("recorded name 'clip.pt'" if case == "moved" else f"recorded path '{train_dir / 'clip.pt'}'") in err
    assert err.count("sha256:") == 2  # both fingerprints named
    assert tree(tmp_path / "run") == before


def test_silent_eval_with_another_backbone_warns_and_records_both(world, tmp_path, capsys):
    tmp, _ = world
    code, out, err = _run(["eval", "--adapter", tmp / "run" / "seed1", "--backbone", tmp / "other.pt", "--json",
                           tmp_path / "r.json", "--quiet"], capsys)
    assert code == 0 and "warning: --adapter" in err and "is another CLIP" in err, err
    assert str((tmp / "tiny.pt").resolve()) in err and "other.pt" in err
    result = json.loads((tmp_path / "r.json").read_text())
    record = json.loads((tmp / "run" / "run.json").read_text())
    assert result["trained_backbone_fingerprint"] == record["backbone"]["fingerprint"]
    assert result["backbone_fingerprint"] not in (None, record["backbone"]["fingerprint"])


def test_silent_dpc_stage2_on_another_backbone_is_refused(world, tmp_path, capsys):
    tmp, data = world
    argv = ["train", *data, "--method", "dpc", "--from", tmp / "run", "--out", tmp_path / "dpc", "--seeds", "1", *TINY]
    argv[argv.index("--backbone") + 1] = tmp / "other.pt"
    code, out, err = _run(argv, capsys)
    assert code == 2 and "was tuned on the backbone" in err and "DPC's stage 2 keeps the stage-1 prompt" in err, err
    assert str((tmp / "tiny.pt").resolve()) in err and "other.pt" in err and err.count("sha256:") == 2
    assert not (tmp_path / "dpc").exists()


# ---------------------------------------------------------------------------- eval and inspect of a run folder
@pytest.fixture
def interrupted(world, tmp_path):
    """RUN with seeds 1, 2 finished and seed 3 stopped after its first epoch (as Ctrl-C leaves it)."""
    _, data = world
    run = _copy(world, tmp_path)
    assert main([str(a) for a in ["train", *data, "--out", run, "--seeds", "3", *TINY, "--stop-after", "1"]]) == 3
    assert (run / "seed3" / "training_state.pt").is_file()
    return run


def test_silent_eval_of_a_run_with_an_interrupted_seed(world, interrupted, capsys):
    code, out, err = _run(["eval", "--adapter", interrupted, "--quiet"], capsys)
    assert code == 2 and "seed 3 is unfinished (interrupted after epoch 1)" in err, err
    command = err.split("finish it with: ")[1].split(", or pass")[0]
    argv = shlex.split(command)
    assert argv[:2] == ["prompt-plugins", "train"] and "--resume" in argv and "--stop-after" not in argv
    assert argv[argv.index("--seeds") + 1] == "3"
    assert f"--adapter {interrupted / 'seed1'} {interrupted / 'seed2'}" in err
    assert main(argv[1:]) == 0  # the command named finishes the seed
    assert main(["eval", "--adapter", str(interrupted), "--quiet"]) == 0


def test_unclear_inspect_of_a_run_folder_lists_its_seeds(interrupted, capsys):
    code, out, err = _run(["inspect", interrupted], capsys)
    assert code == 0, err
    assert "coop with recipe coop (2 epochs" in out and "OxfordPets at" in out and "3 base / 2 new), 2 shots" in out
    assert "seed 1: finished: coop, 2 epochs, 2 shots" in out and "seed 3: interrupted at epoch 1" in out
    assert "continue seed 3 with: prompt-plugins train" in out and "--seeds 3" in out and "--resume" in out
    (interrupted / "run.json").unlink()
    code, out, err = _run(["inspect", interrupted], capsys)
    assert code == 0 and "no run.json (written before run records)" in out and "seed 2: finished" in out


def test_silent_eval_json_records_the_class_lists(world, tmp_path, capsys):
    tmp, _ = world
    code, _, err = _run(["eval", "--adapter", tmp / "run" / "seed1", "--json", tmp_path / "r.json", "--quiet"], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    run = json.loads((tmp / "run" / "seed1" / "adapter_config.json").read_text())["run"]
    assert result["classnames"] == run["classnames"] and len(result["classnames"]) == 5
    assert result["base_classes"] == ["red circle", "blue square", "green bar"]
    assert result["new_classes"] == ["yellow star", "purple ring"]
    assert result["root"] == run["root"]


# ---------------------------------------------------------------------------- duplicates
def test_silent_eval_of_a_run_and_its_seed_evaluates_it_once(world, tmp_path, capsys):
    tmp, _ = world
    code, out, err = _run(["eval", "--adapter", tmp / "run", tmp / "run" / "seed1", "--json", tmp_path / "r.json",
                           "--quiet"], capsys)
    assert code == 0 and f"note: {tmp / 'run' / 'seed1'} is given twice" in err and "evaluated once" in err, err
    assert [r["seed"] for r in json.loads((tmp_path / "r.json").read_text())] == [1, 2]
    assert main(["benchmark", str(tmp_path / "r.json")]) == 0


def _zero_shot(capsys, root, backbone, seed, out):
    code, _, err = _run(["eval", "--dataset", "imagefolder", "--root", root, "--backbone", backbone, "--seed", seed,
                         "--shots", "2", "--json", out, "--quiet"], capsys)
    assert code == 0, err
    return json.loads(out.read_text())


def test_crash_benchmark_of_a_file_holding_a_seed_twice(world, tmp_path, capsys):
    tmp, _ = world
    root = layouts.imagefolder(tmp_path / "shapes", n_classes=4)
    result = _zero_shot(capsys, root, tmp / "tiny.pt", 1, tmp_path / "one.json")
    (tmp_path / "twice.json").write_text(json.dumps([result, result]))  # what eval --adapter RUN RUN/seed1 wrote
    code, out, err = _run(["benchmark", tmp_path / "twice.json", tmp_path / "twice.json"], capsys)
    assert code == 0 and "twice.json is given twice" in err and "the same result is in" in err, err
    assert "| imagefolder | zero-shot | 0 | 1 |" in out
    other = dict(result, base=dict(result["base"], accuracy=result["base"]["accuracy"] + 1))
    (tmp_path / "clash.json").write_text(json.dumps([result, other]))
    code, out, err = _run(["benchmark", tmp_path / "clash.json"], capsys)
    assert code == 2 and "with other numbers; pass each result once" in err, err


def test_silent_benchmark_keeps_two_imagefolder_sets_apart(world, tmp_path, capsys):
    tmp, _ = world
    a = layouts.imagefolder(tmp_path / "set_a", n_classes=4)
    b = layouts.imagefolder(tmp_path / "set_b", n_classes=4)
    _zero_shot(capsys, a, tmp / "tiny.pt", 1, tmp_path / "results" / "a.json")
    _zero_shot(capsys, b, tmp / "tiny.pt", 2, tmp_path / "results" / "b.json")
    code, out, err = _run(["benchmark", tmp_path / "results"], capsys)
    assert code == 0, err
    assert "| imagefolder (" in out and "set_a) | zero-shot | 0 | 1 |" in out and "set_b) | zero-shot | 0 | 2 |" in out
    assert "| imagefolder | zero-shot | 0 | 1 2 |" not in out and "Average (2 data sets)" in out


def test_silent_benchmark_keeps_two_backbones_apart(world, tmp_path, capsys):
    tmp, _ = world
    root = layouts.imagefolder(tmp_path / "shapes", n_classes=4)
    _zero_shot(capsys, root, tmp / "tiny.pt", 1, tmp_path / "results" / "a.json")
    _zero_shot(capsys, root, tmp / "other.pt", 2, tmp_path / "results" / "b.json")
    code, out, err = _run(["benchmark", tmp_path / "results"], capsys)
    assert code == 0, err
    assert "| imagefolder | zero-shot (tiny.pt " in out and "| imagefolder | zero-shot (other.pt " in out
    assert "| imagefolder | zero-shot | 0 | 1 2 |" not in out
