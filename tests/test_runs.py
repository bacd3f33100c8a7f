"""``train`` / ``eval`` on tiny data sets in the published layouts: every method train -> eval with the recipes,
DPC's new accuracy equal to its stage-1 run, the adapter's record, resume equal to an uninterrupted run, and
every bad argument refused before any work is done."""
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
    """A CoOp-layout data set (5 classes: 3 base / 2 new), a tiny CLIP file and a trained CoOp run."""
    tmp = tmp_path_factory.mktemp("world")
    root = layouts.coop_json(tmp / "data", n_classes=5, train=3, val=1, test=2)
    backbone = tmp / "tiny.pt"
    torch.save(make_openai().state_dict(), backbone)
    data = ["--dataset", "oxford_pets", "--root", str(root), "--backbone", str(backbone)]
    assert main(["train", *data, "--out", str(tmp / "coop"), "--seeds", "1", "2", *TINY]) == 0
    return tmp, data


def _eval(tmp, adapter, name, *extra):
    out = tmp / f"{name}.json"
    assert main(["eval", "--adapter", str(adapter), "--json", str(out), "--per-class", "--quiet", *extra]) == 0
    return json.loads(out.read_text())


def test_coop_records_its_split_and_eval_uses_it(world, capsys):
    tmp, _ = world
    config = json.loads((tmp / "coop" / "seed2" / "adapter_config.json").read_text())
    run = config["run"]
    assert (run["dataset"], run["protocol"], run["shots"], run["seed"]) == ("OxfordPets", "coop-base2new", 2, 2)
    assert run["base_classes"] == ["red circle", "blue square", "green bar"]
    assert run["new_classes"] == ["yellow star", "purple ring"]
    assert run["recipe"]["name"] == "coop" and run["recipe"]["epochs"] == 1 and run["method"] == "coop"
    result = _eval(tmp, tmp / "coop" / "seed2", "coop2")
    assert set(result) >= {"dataset", "method", "seed", "shots", "base", "new", "hm"}
    assert (result["dataset"], result["method"], result["seed"], result["shots"]) == ("OxfordPets", "coop", 2, 2)
    assert result["base"]["classes"] == 3 and result["base"]["items"] == 6
    assert result["new"]["classes"] == 2 and result["new"]["items"] == 4
    assert list(result["new"]["per_class"]) == ["yellow star", "purple ring"]
    with pytest.raises(SystemExit):  # argparse: --n-base is gone, the split is the data set's
        main(["eval", "--adapter", str(tmp / "coop" / "seed2"), "--n-base", "2"])
    assert main(["eval", "--adapter", str(tmp / "coop" / "seed2"), "--seed", "1", "--quiet"]) == 2
    assert "was trained with 2; drop --seed" in capsys.readouterr().err


def test_dpc_stage2_keeps_the_stage1_new_accuracy(world):
    tmp, data = world
    assert main(["train", *data, "--method", "dpc", "--from", str(tmp / "coop"), "--out", str(tmp / "dpc"),
                 "--seeds", "1", "2", *TINY]) == 0
    config = json.loads((tmp / "dpc" / "seed1" / "adapter_config.json").read_text())
    assert config["method"] == "dpc" and config["dpc"]["base_classes"] == config["run"]["base_classes"]
    assert config["run"]["stage1"].endswith("seed1")
    for seed in (1, 2):
        stage1 = _eval(tmp, tmp / "coop" / f"seed{seed}", f"coop{seed}")
        stage2 = _eval(tmp, tmp / "dpc" / f"seed{seed}", f"dpc{seed}")
        assert stage2["method"] == "dpc"
        assert stage2["new"] == stage1["new"]  # new classes keep P: identical accuracy, per class too
    state = load_file(str(tmp / "dpc" / "seed1" / "adapter_model.safetensors"))
    assert not torch.equal(state["dpc.X.ctx"], state["dpc.P.ctx"])  # the base prompt trained


def test_ivlp_and_ga2_train_and_eval(world):
    tmp, data = world
    assert main(["train", *data, "--method", "ivlp", "--n-ctx", "2", "--set", "n_visual_ctx=2",
                 "--out", str(tmp / "ivlp"), *TINY]) == 0
    ivlp = _eval(tmp, tmp / "ivlp" / "seed1", "ivlp")
    assert ivlp["method"] == "ivlp" and ivlp["base"]["items"] == 6
    anchors = tmp / "data" / "oxford_pets" / "images" / "red_circle"
    assert main(["train", *data, "--method", "ga2", "--hard-prompt", str(tmp / "coop" / "seed1"), "--anchors",
                 str(anchors), "--set", "anchor_clips_per_step=2", "n_visual_ctx=2", "--out", str(tmp / "ga2"),
                 *TINY]) == 0
    config = json.loads((tmp / "ga2" / "seed1" / "adapter_config.json").read_text())
    assert config["method"] == "ga2" and config["run"]["anchors"] == str(anchors)
    assert config["run"]["recipe"]["lr_update_every"] == 10
    ga2 = _eval(tmp, tmp / "ga2" / "seed1", "ga2")
    assert ga2["method"] == "ga2" and 0 <= ga2["hm"] <= 100


def test_imagenet_and_fgvc_layouts_train_and_eval(tmp_path):
    backbone = tmp_path / "tiny.pt"
    torch.save(make_openai().state_dict(), backbone)
    for name, root in (("imagenet", layouts.imagenet(tmp_path / "in", n_classes=4)),
                       ("fgvc_aircraft", layouts.fgvc(tmp_path / "fgvc", n_classes=4))):
        out = tmp_path / name
        assert main(["train", "--dataset", name, "--root", str(root), "--backbone", str(backbone), "--out", str(out),
                     *TINY]) == 0
        result = _eval(tmp_path, out / "seed1", name)
        assert result["base"]["classes"] == 2 and result["new"]["classes"] == 2


@pytest.mark.parametrize("encoded", [False, True])
def test_vifi_video_split_train_and_eval(tmp_path, encoded):
    if encoded:
        pytest.importorskip("av")
    videos, top = layouts.vifi(tmp_path / "videos", tmp_path / "vifi", base=3, novel=2, shots=2, test=1,
                               frames=4, encoded=encoded)
    backbone = tmp_path / "tiny.pt"
    torch.save(make_openai().state_dict(), backbone)
    data = ["--dataset", "hmdb51", "--root", str(videos), "--splits", str(top), "--backbone", str(backbone)]
    if not encoded:  # the coop recipe has no frame count: refused before any work
        assert main(["train", *data, "--out", str(tmp_path / "coop"), *TINY]) == 2
        assert not (tmp_path / "coop").exists()
    assert main(["train", *data, "--method", "ivlp", "--frames", "2", "--n-ctx", "2", "--set", "n_visual_ctx=2",
                 "--out", str(tmp_path / "run"), "--seeds", "3", *TINY]) == 0
    run = json.loads((tmp_path / "run" / "seed3" / "adapter_config.json").read_text())["run"]
    assert run["protocol"] == "vifi-base2novel" and run["frames"] == 2
    assert run["source"]["train_list"] == "fs_base_s3_train.txt"
    assert run["base_classes"] == ["green bar", "yellow star", "purple ring"]  # ViFi's CSV, not a sorted half
    result = _eval(tmp_path, tmp_path / "run" / "seed3", "vifi")
    assert result["base"]["items"] == 3 and result["new"]["items"] == 2 and result["protocol"] == "vifi-base2novel"


@pytest.mark.parametrize("method", ["coop", "ga2", "dpc"])
def test_resume_equals_an_uninterrupted_run(world, method, capsys):
    tmp, data = world
    extra = ["--epochs", "3", "--warmup-epochs", "1", "--batch-size", "2", "--shots", "2", "--quiet"]
    if method == "dpc":  # the hard-negative sampler's generator is part of the saved state
        extra += ["--method", "dpc", "--from", str(tmp / "coop")]
    if method == "ga2":
        extra += ["--method", "ga2", "--hard-prompt", str(tmp / "coop" / "seed1"), "--set", "n_visual_ctx=2",
                  "anchor_clips_per_step=1", "lr_update_every=1", "--anchors",
                  str(tmp / "data" / "oxford_pets" / "images" / "blue_square")]
    whole, parts = tmp / f"whole-{method}", tmp / f"parts-{method}"
    assert main(["train", *data, "--out", str(whole), *extra]) == 0
    assert main(["train", *data, "--out", str(parts), "--stop-after", "1", *extra]) == 3
    assert (parts / "seed1" / "training_state.pt").is_file()
    assert not (parts / "seed1" / "adapter_config.json").exists()
    assert main(["train", *data, "--out", str(parts), *extra]) == 2  # interrupted: refuses without --resume
    assert "pass --resume to continue it" in capsys.readouterr().err
    assert main(["train", *data, "--out", str(parts), "--resume", *extra]) == 0
    assert not (parts / "seed1" / "training_state.pt").exists()
    a = load_file(str(whole / "seed1" / "adapter_model.safetensors"))
    b = load_file(str(parts / "seed1" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert main(["train", *data, "--out", str(parts), "--resume", *extra]) == 0  # finished: skipped
    assert "skipped (--resume)" in capsys.readouterr().out


def test_training_is_deterministic_per_seed(world):
    tmp, data = world
    assert main(["train", *data, "--out", str(tmp / "coop-again"), "--seeds", "1", *TINY]) == 0
    first = load_file(str(tmp / "coop" / "seed1" / "adapter_model.safetensors"))
    again = load_file(str(tmp / "coop-again" / "seed1" / "adapter_model.safetensors"))
    other = load_file(str(tmp / "coop" / "seed2" / "adapter_model.safetensors"))
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["prompt.ctx"], other["prompt.ctx"])  # another seed: another draw and order


def test_ga2_anchors_from_a_split_file(tmp_path):
    from prompt_plugins.errors import ConfigError
    from prompt_plugins.runs import TrainPlan
    from prompt_plugins.runs.train import anchor_items

    listing = tmp_path / "lists" / "anchors.txt"
    listing.parent.mkdir()
    listing.write_text("clips/a.avi 3\n\nclips/b.avi 7\n")  # ViFi's '<path> <label>' lines; labels unused
    plan = TrainPlan(dataset="k400", root=".", backbone="b.pt", out="o", method="ga2", hard_prompt=str(listing),
                     anchors=str(listing))
    with pytest.raises(ConfigError, match="first clip .* does not exist; pass --anchors-root DIR"):
        anchor_items(plan)
    (listing.parent / "clips" / "a").mkdir(parents=True)  # a frame folder named like the video
    assert [it.path for it in anchor_items(plan)] == [str(listing.parent / "clips/a.avi"),
                                                      str(listing.parent / "clips/b.avi")]
    plan.anchors_root = str(tmp_path / "videos")
    (tmp_path / "videos" / "clips").mkdir(parents=True)
    (tmp_path / "videos" / "clips" / "a.avi").write_bytes(b"")
    assert anchor_items(plan)[0].path == str(tmp_path / "videos" / "clips/a.avi")


def test_progress_is_one_line_per_epoch_in_a_log(world, capsys):
    tmp, data = world
    assert main(["train", *data, "--out", str(tmp / "logged"), "--epochs", "2", "--warmup-epochs", "0",
                 "--batch-size", "2", "--shots", "2"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "epoch" in line]
    assert [line.split()[3] for line in lines] == ["1/2", "2/2"] and "\r" not in err
    assert all("loss" in line and "items/s" in line for line in lines)


def test_overwrite_replaces_an_adapter(world, capsys):
    tmp, data = world
    out = tmp / "again"
    assert main(["train", *data, "--out", str(out), *TINY]) == 0
    assert main(["train", *data, "--out", str(out), *TINY]) == 2
    assert "already holds an adapter; pass --overwrite" in capsys.readouterr().err
    assert main(["train", *data, "--out", str(out), "--overwrite", *TINY]) == 0


BAD = [
    (["--shots", "0"], "--shots 0 is out of range"),
    (["--steps", "0"], "--steps 0: train counts epochs, as the recipes do; pass --epochs N"),
    (["--batch", "0"], "--batch-size 0 is out of range"),  # argparse reads --batch as --batch-size
    (["--frames", "0"], "--frames 0 is out of range"),
    (["--lr", "-1"], "--lr -1.0 is out of range"),
    (["--lr", "nan"], "--lr nan is out of range"),
    (["--epochs", "0"], "--epochs 0 is out of range"),
    (["--batch-size", "0"], "--batch-size 0 is out of range"),
    (["--workers", "-1"], "--workers -1 is out of range"),
    (["--epochs", "1"], "--epochs 1 leaves no epoch after recipe coop's 1 warm-up"),
    (["--seeds", "1", "1"], "must be distinct"),
    (["--method", "dpc"], "--method dpc trains DPC's stage 2: pass --from RUN"),
    (["--method", "ga2"], "--method ga2 needs --hard-prompt FILE"),
    (["--hard-prompt", "nowhere.pt"], "--hard-prompt is for --method ga2"),
    (["--method", "ga2", "--hard-prompt", "nowhere.pt"], "--hard-prompt 'nowhere.pt' does not exist"),
    (["--recipe", "dpc"], "--recipe dpc is a dpc recipe but --method is coop"),
    (["--set", "bogus=1"], "unknown field(s) ['bogus']"),
    (["--set", "momentum"], "use FIELD=VALUE"),
    (["--device", "tpu9"], "--device 'tpu9'"),
    (["--resume", "--overwrite"], "exclude each other"),
    (["DATASET", "cifar10"], "--dataset 'cifar10' is unknown"),
    (["ROOT", "missing"], "--root must be the folder holding oxford_pets/"),
    (["BACKBONE", "missing.pt"], "is not a file on disk"),
    (["OUT", "file"], "is a file; pass a folder"),
    (["OUT", "adapter"], "already holds an adapter"),
    (["FROM", "other-shots"], "DPC's stage 2 must see the same few-shot set"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_arguments_fail_before_any_work(world, tmp_path, monkeypatch, capsys, args, message):
    import prompt_plugins.runs.backbone as backbone_module

    tmp, data = world
    monkeypatch.setattr(backbone_module, "load_backbone", lambda *a, **k: pytest.fail("work started"))
    argv = ["train", *data, "--out", str(tmp_path / "out"), "--quiet"]
    kind = args[0]
    if kind == "DATASET":
        argv[argv.index("--dataset") + 1] = args[1]
    elif kind == "ROOT":
        argv[argv.index("--root") + 1] = str(tmp_path / args[1])
    elif kind == "BACKBONE":
        argv[argv.index("--backbone") + 1] = str(tmp_path / args[1])
    elif kind == "OUT" and args[1] == "file":
        (tmp_path / "out").write_text("x")
    elif kind == "OUT":
        argv[argv.index("--out") + 1] = str(tmp / "coop")
        argv += ["--seeds", "1"]
    elif kind == "FROM":
        argv += ["--method", "dpc", "--from", str(tmp / "coop"), "--shots", "3"]
    else:
        argv += args
    if kind == "--device" and args[1] == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("prompt-plugins train: error:") and message in err, err
    assert not (tmp_path / "out" / "seed1").exists()


def test_train_eval_benchmark_over_seeds(world, capsys):
    tmp, _ = world
    out = tmp / "seeds.json"
    assert main(["eval", "--adapter", str(tmp / "coop"), "--json", str(out), "--quiet"]) == 0
    results = json.loads(out.read_text())
    assert [r["seed"] for r in results] == [1, 2]
    capsys.readouterr()
    assert main(["benchmark", str(out)]) == 0
    table = capsys.readouterr().out
    base = sum(r["base"]["accuracy"] for r in results) / 2
    assert f"| Average (1 data set) | coop | 2 | 1 2 | {base:.2f} |" in table
    assert "| OxfordPets | coop | 2 | 1 2 |" in table


EVAL_BAD = [
    (["--batch-size", "0"], "--batch-size 0 is out of range"),
    (["--frames", "0"], "--frames 0 is out of range"),
    (["--workers", "-1"], "--workers -1 is out of range"),
    (["--device", "tpu9"], "--device 'tpu9'"),
    (["--seed", "2"], "was trained with 1; drop --seed"),
    (["--shots", "3"], "was trained with 2; drop --shots"),
    (["ADAPTER", "missing"], "is neither an adapter folder"),
    (["JSON", "under-a-file"], "is a file; pass a folder"),
    (["ZERO-SHOT", "--shots", "0"], "--shots 0 is out of range"),
    (["ZERO-SHOT-NO-BACKBONE"], "needs --dataset, --root and --backbone"),
]


@pytest.mark.parametrize("args, message", EVAL_BAD, ids=[m[:30] for _, m in EVAL_BAD])
def test_eval_bad_arguments_fail_before_any_work(world, tmp_path, monkeypatch, capsys, args, message):
    import prompt_plugins.runs.backbone as backbone_module

    tmp, data = world
    monkeypatch.setattr(backbone_module, "load_backbone", lambda *a, **k: pytest.fail("work started"))
    argv = ["eval", "--adapter", str(tmp / "coop" / "seed1"), "--quiet"]
    if args[0] == "ADAPTER":
        argv[2] = str(tmp_path / args[1])
    elif args[0] == "JSON":
        (tmp_path / "file").write_text("x")
        argv += ["--json", str(tmp_path / "file" / "out.json")]
    elif args[0] == "ZERO-SHOT":
        argv = ["eval", *data, "--quiet", *args[1:]]
    elif args[0] == "ZERO-SHOT-NO-BACKBONE":
        argv = ["eval", *data[:4], "--quiet"]
    else:
        argv += args
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("prompt-plugins eval: error:") and message in err, err
