"""The remaining silent or broken CLI and library paths (issue 22 §3): class-name files, one base class, hard negatives
without their images, flags that do not apply, unwritable seed folders, records missing a field, Ctrl-C, --plot,
--ctx-init, class-specific adapters given too few names, --no-video, clip's import warning. Ids start with the kind
of behaviour each case had before (``bad_cases``)."""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("clip")
pytest.importorskip("PIL")

import data_layouts as layouts  # noqa: E402
import prompt_plugins as pp  # noqa: E402
from prompt_plugins.cli import main  # noqa: E402
from prompt_plugins.errors import ClassNameError, ConfigError  # noqa: E402
from bad_cases import refused, tree  # noqa: E402
from tiny_models import images, make_openai  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY = ["--epochs", "2", "--warmup-epochs", "0", "--batch-size", "2", "--shots", "2", "--n-ctx", "2", "--quiet"]
#: the class folders of data_layouts.imagefolder(n_classes=4)
FOLDERS = ["red_circle", "blue_square", "green_bar", "yellow_star"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A CoOp-layout set (5 classes), an imagefolder set (4 classes), a tiny CLIP file and a CoOp run of seed 1."""
    tmp = tmp_path_factory.mktemp("paths")
    coop = layouts.coop_json(tmp / "coop", n_classes=5, train=3, val=1, test=2)
    folder = layouts.imagefolder(tmp / "folder", n_classes=4)
    torch.save(make_openai().state_dict(), tmp / "tiny.pt")
    data = ["--dataset", "oxford_pets", "--root", str(coop), "--backbone", str(tmp / "tiny.pt")]
    assert main(["train", *data, "--out", str(tmp / "run"), *TINY]) == 0
    return tmp, data, ["--dataset", "imagefolder", "--root", str(folder), "--backbone", str(tmp / "tiny.pt")]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the backbone is ever loaded (the refusal must come before any work)."""
    import prompt_plugins.runs.backbone as backbone_module

    monkeypatch.setattr(backbone_module, "load_backbone", lambda *a, **k: pytest.fail("work started"))


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line(err, command):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"prompt-plugins {command}:") and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------- --classnames files
def _names_file(tmp_path, text, bom=False):
    path = tmp_path / "names.txt"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


@pytest.mark.parametrize("text, words", [
    pytest.param("red_circle red circle\nblue_square blue square\ngreen_bar green bar\nyellow_star yellow star\n"
                 "red_circle crimson disc\n", ("names.txt:5: folder 'red_circle' is listed twice (lines 1 and 5",
                                               "'red circle' and 'crimson disc'"),
                 id="silent-classnames-folder-listed-twice"),
    pytest.param("red_circle red circle\nblue_square blue square\ngreen_bar green bar\nyellow_star yellow star\n"
                 "purple_ring purple ring\n", ("names folders that", "lacks: ['purple_ring']"),
                 id="silent-classnames-for-folders-the-data-lacks"),
    pytest.param("", ("class-name file", "is empty", "'<folder> <class name>'"), id="unclear-classnames-empty-file"),
    pytest.param("\n  \n", ("is empty",), id="unclear-classnames-blank-lines-only"),
])
def test_bad_classnames_files_are_refused(world, tmp_path, capsys, no_work, text, words):
    _, _, folder = world
    code, out, err = _run(["eval", *folder, "--classnames", _names_file(tmp_path, text), "--quiet"], capsys)
    line = _one_line(err, "eval")
    assert code == 2 and all(w in line for w in words), err


def test_silent_classnames_file_with_a_byte_order_mark(tmp_path, capsys):
    src = tmp_path / "model.pth.tar-5"
    torch.save({"state_dict": {"ctx": torch.zeros(2, 64)}, "epoch": 5}, src)
    names = _names_file(tmp_path, "blue square\nred circle\n", bom=True)  # as Windows editors save it
    code, out, err = _run(["convert", src, tmp_path / "out", "--format", "coop", "--classnames", names], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["classnames"] == ["blue square",
                                                                                                "red circle"]


def test_silent_names_differing_by_a_byte_order_mark(model, tmp_path):
    from prompt_plugins.data import read_classnames

    with refused(ClassNameError, "names.txt", "duplicate class name 'dog' at positions 0 and 2"):
        read_classnames(_names_file(tmp_path, "dog\ncat\ndog\n", bom=True))  # '\ufeffdog' and 'dog' before
    with refused(ClassNameError, "'dog' (#0) and '\\ufeffdog' (#1) differ only by case, spaces or Unicode form"):
        pp.wrap(model, ["dog", "\ufeffdog"], n_ctx=2)  # one prompt for both: identical logits
    with refused(ClassNameError, "class name #0 is blank", "invisible characters only"):
        pp.wrap(model, ["\ufeff", "cat"], n_ctx=2)


def test_unclear_folder_classnames_file_with_a_byte_order_mark(world, tmp_path, capsys):
    _, _, folder = world
    names = _names_file(tmp_path, "\n".join(f"{f} {f.replace('_', ' ')}" for f in FOLDERS) + "\n", bom=True)
    code, out, err = _run(["eval", *folder, "--classnames", names, "--shots", "2", "--json", tmp_path / "r.json",
                           "--quiet"], capsys)  # before: "no class name for the folders ['red_circle']"
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    assert sorted(result["classnames"]) == sorted(f.replace("_", " ") for f in FOLDERS)


# ---------------------------------------------------------------------------- one base class, missing negatives
def test_silent_one_base_class_trains_nothing(world, tmp_path, capsys, no_work):
    tmp, _, _ = world
    root = layouts.imagefolder(tmp_path / "two", n_classes=2)
    code, out, err = _run(["train", "--dataset", "imagefolder", "--root", root, "--backbone", tmp / "tiny.pt", "--out",
                           tmp_path / "run", *TINY], capsys)
    line = _one_line(err, "train")
    assert code == 2 and "has 2 classes, so 1 base class" in line and "at least 2 base classes" in line, err
    assert not (tmp_path / "run").exists()


def test_silent_hard_negatives_without_images_of_some_base_classes(model):
    names = ["red circle", "blue square", "green triangle", "yellow star"]
    dpc = pp.wrap(model, names, method="dpc", base_classes=names[:3], n_ctx=2)
    try:
        partial = [(images(1, seed=c)[0], c) for c in (0, 1) for _ in range(2)]  # no 'green triangle' item
        with refused(ConfigError, "no item of the candidate classes ['green triangle'] (indices [2])",
                     "would never be negatives", "classes=[...] without them"):
            pp.HardNegativeOptimizer(dpc, partial, top_k=1)
        objective = pp.HardNegativeOptimizer(dpc, partial, top_k=1, classes=[0, 1])  # the fix the message names
        assert torch.isfinite(objective(images(2), torch.tensor([0, 1])))
    finally:
        dpc.eject()


# ---------------------------------------------------------------------------- flags that do not apply
@pytest.mark.parametrize("which, extra, words", [
    pytest.param("coop", ["--classnames", "NAMES"], ("--classnames is for --dataset imagefolder",
                                                     "oxford_pets names its classes in its own files",
                                                     "drop --classnames"), id="silent-classnames-with-a-coop-layout"),
    pytest.param("folder", ["--splits", "SPLITS"], ("--splits is for the ViFi-CLIP video data sets",
                                                    "drop --splits"), id="silent-splits-with-imagefolder"),
    pytest.param("coop", ["--splits", "SPLITS"], ("--splits is for the ViFi-CLIP",),
                 id="silent-splits-with-a-coop-layout"),
    pytest.param("folder", ["--frames", "8"], ("--frames is for video data sets", "holds images", "drop --frames"),
                 id="silent-frames-with-images"),
    pytest.param("coop", ["--anchor-weight", "0.5"], ("--anchor-weight is for --method ga2, not coop",),
                 id="silent-anchor-weight-without-ga2"),
    pytest.param("coop", ["--anchors-root", "SPLITS"], ("--anchors-root is for --method ga2, not coop",),
                 id="silent-anchors-root-without-ga2"),
    pytest.param("ga2", ["--anchors-root", "SPLITS"], ("--anchors-root is the folder the paths of an --anchors list",
                                                        "pass --anchors LIST"), id="silent-anchors-root-without-anchors"),
])
def test_train_flags_that_do_not_apply_are_refused(world, tmp_path, capsys, no_work, which, extra, words):
    tmp, coop, folder = world
    (tmp_path / "names.txt").write_text("red_circle red circle\n")
    (tmp_path / "splits").mkdir()
    extra = [str(tmp_path / "names.txt") if e == "NAMES" else str(tmp_path / "splits") if e == "SPLITS" else e
             for e in extra]
    if which == "ga2":
        extra += ["--method", "ga2", "--hard-prompt", str(tmp / "run" / "seed1")]
    code, out, err = _run(["train", *(folder if which == "folder" else coop), "--out", tmp_path / "out", *TINY, *extra],
                          capsys)
    line = _one_line(err, "train")
    assert code == 2 and all(w in line for w in words), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, words", [
    pytest.param(["--classnames", "NAMES"], ("--classnames is for --dataset imagefolder",),
                 id="silent-eval-classnames-with-a-coop-layout"),
    pytest.param(["--frames", "8"], ("--frames is for video data sets",), id="silent-eval-frames-with-images"),
])
def test_eval_flags_that_do_not_apply_are_refused(world, tmp_path, capsys, no_work, extra, words):
    tmp, _, _ = world
    (tmp_path / "names.txt").write_text("red_circle red circle\n")
    extra = [str(tmp_path / "names.txt") if e == "NAMES" else e for e in extra]
    code, out, err = _run(["eval", "--adapter", tmp / "run" / "seed1", "--quiet", *extra], capsys)
    assert code == 2 and all(w in _one_line(err, "eval") for w in words), err


# ---------------------------------------------------------------------------- an unwritable seed folder
def _make_unwritable(folder):
    """Make ``folder`` refuse new files, for root too when chattr +i works here; None when nothing does."""
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return lambda: folder.chmod(0o700)
    return None


def test_crash_overwrite_into_an_unwritable_seed_folder_fails_before_training(world, tmp_path, capsys):
    tmp, data, _ = world
    shutil.copytree(tmp / "run", tmp_path / "run")
    before = tree(tmp_path / "run")
    undo = _make_unwritable(tmp_path / "run" / "seed1")
    if undo is None:
        pytest.skip("root without chattr: no folder here refuses root's writes")
    try:
        code, out, err = _run(["train", *data, "--out", tmp_path / "run", *TINY, "--overwrite"], capsys)
    finally:
        undo()
    line = _one_line(err, "train")
    assert code == 2 and "--out seed folder" in line and "seed1' is not writable" in line, err
    assert "epoch" not in out + err  # refused before the first epoch, not at the save after the last
    assert tree(tmp_path / "run") == before


# ---------------------------------------------------------------------------- a run record missing a field
@pytest.mark.parametrize("command", [pytest.param("eval", id="crash-eval-record-missing-a-field"),
                                     pytest.param("train", id="crash-train-from-record-missing-a-field")])
def test_run_record_missing_a_field(world, tmp_path, capsys, command):
    tmp, data, _ = world
    shutil.copytree(tmp / "run", tmp_path / "run")
    path = tmp_path / "run" / "seed1" / "adapter_config.json"
    config = json.loads(path.read_text())
    del config["run"]["seed"]
    path.write_text(json.dumps(config))
    before = tree(tmp_path / "run")
    argv = (["eval", "--adapter", tmp_path / "run" / "seed1", "--quiet"] if command == "eval" else
            ["train", *data, "--method", "dpc", "--from", tmp_path / "run", "--out", tmp_path / "dpc", *TINY])
    code, out, err = _run(argv, capsys)
    line = _one_line(err, command)
    assert code == 2 and f"{path} 'run': missing field 'seed' (RunRecord needs it)" in line, err
    assert tree(tmp_path / "run") == before and not (tmp_path / "dpc").exists()


# ---------------------------------------------------------------------------- Ctrl-C
def test_crash_ctrl_c_during_train_is_one_line_and_the_state_is_kept(world, tmp_path, capsys, monkeypatch):
    from prompt_plugins.runs.progress import Progress
    from prompt_plugins.runs.state import peek_epoch

    _, data, _ = world
    start = Progress.start_epoch

    def interrupt_second_epoch(self, epoch):  # Ctrl-C as the second epoch begins
        if epoch == 1:
            raise KeyboardInterrupt
        start(self, epoch)

    monkeypatch.setattr(Progress, "start_epoch", interrupt_second_epoch)
    out_dir = tmp_path / "run"
    code, out, err = _run(["train", *data, "--out", out_dir, *TINY, "--epochs", "3"], capsys)
    line = _one_line(err, "train")
    assert code == 130 and "seed 1 stopped after epoch 1 of 3" in line, err
    assert f"({out_dir / 'seed1' / 'training_state.pt'} kept); continue with: prompt-plugins train" in line
    assert peek_epoch(out_dir / "seed1" / "training_state.pt") == 1
    assert not (out_dir / "seed1" / "adapter_config.json").exists()
    monkeypatch.setattr(Progress, "start_epoch", start)
    argv = shlex.split(line.split("continue with: ")[1])
    assert "--resume" in argv
    assert main(argv[1:]) == 0 and (out_dir / "seed1" / "adapter_config.json").is_file()  # the hint works


def test_crash_sigint_to_a_training_process(world, tmp_path):
    """A real Ctrl-C: SIGINT to ``python -m prompt_plugins train`` once its first epoch's state is on disk (a
    subprocess: about 5 s, for the interpreter and torch to start)."""
    _, data, _ = world
    out_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    proc = subprocess.Popen([sys.executable, "-m", "prompt_plugins", "train", *data, "--out", str(out_dir), *TINY,
                             "--epochs", "100000"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    state = out_dir / "seed1" / "training_state.pt"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert lines[0].startswith("prompt-plugins train: seed 1 stopped after epoch") and "--resume" in lines[0]
    assert state.is_file() and not (out_dir / "seed1" / "adapter_config.json").exists()


# ---------------------------------------------------------------------------- --plot, --ctx-init, CSC, demo
def test_unclear_benchmark_plot_of_an_unknown_type_fails_first(world, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    import prompt_plugins.runs.report as report

    tmp, _, _ = world
    monkeypatch.setattr(report, "load_results", lambda *a, **k: pytest.fail("results read before --plot was checked"))
    code, out, err = _run(["benchmark", tmp / "run", "--plot", tmp_path / "x.txt", "--markdown", tmp_path / "t.md"],
                          capsys)
    line = _one_line(err, "benchmark")
    assert code == 2 and "--plot" in line and "matplotlib writes" in line and ".png" in line and "not .txt" in line
    assert tree(tmp_path) == {}


def test_unclear_demo_plot_of_an_unknown_type_fails_first(capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    import prompt_plugins.demo as demo

    monkeypatch.setattr(demo, "run_demo", lambda **k: pytest.fail("the demo ran"))
    code, out, err = _run(["demo", "--plot", "figure", "--quiet"], capsys)
    assert code == 2 and "not a file without an extension" in _one_line(err, "demo"), err


def test_unclear_ctx_init_sets_the_context_length(world, tmp_path, capsys):
    _, data, _ = world
    at = TINY.index("--n-ctx")
    tiny = TINY[:at] + TINY[at + 2:]
    code, out, err = _run(["train", *data, "--out", tmp_path / "run", *tiny, "--ctx-init", "a picture of"], capsys)
    assert code == 0 and "note: --ctx-init 'a picture of' is 3 tokens: n_ctx 4 -> 3" in out, out + err
    config = json.loads((tmp_path / "run" / "seed1" / "adapter_config.json").read_text())
    assert config["prompt"]["n_ctx"] == 3 and config["run"]["recipe"]["n_ctx"] == 3
    code, out, err = _run(["train", *data, "--out", tmp_path / "run2", *tiny, "--ctx-init", "a picture of",
                           "--n-ctx", "4"], capsys)
    line = _one_line(err, "train")
    assert code == 2 and "--ctx-init 'a picture of' is 3 tokens but --n-ctx 4" in line and "--n-ctx 3" in line
    assert "omit n_ctx" not in line and not (tmp_path / "run2" / "seed1").exists()


def test_unclear_class_specific_adapter_given_too_few_names(model, tmp_path):
    src = tmp_path / "model.pth.tar-5"  # an official CoOp class-specific file: 6 contexts, no class names
    torch.save({"state_dict": {"ctx": torch.randn(6, 2, 64), "token_prefix": torch.zeros(6, 1, 64),
                               "token_suffix": torch.zeros(6, 74, 64)}, "epoch": 5}, src)
    assert main(["convert", str(src), str(tmp_path / "csc"), "--format", "coop"]) == 0
    before = tree(tmp_path / "csc")
    with refused(ClassNameError, "class-specific contexts for 6 classes, 4 names given",
                 "pass the 6 class names it was trained with") as info:
        pp.from_pretrained(model, tmp_path / "csc", classnames=["a", "b", "c", "d"])
    assert "backbone width" not in str(info.value)
    assert tree(tmp_path / "csc") == before
    pp.from_pretrained(model, tmp_path / "csc", classnames=list("abcdef")).eject()


def test_unclear_demo_no_video_skips_the_video_methods(capsys, monkeypatch):
    import prompt_plugins.demo as demo

    monkeypatch.setattr(demo, "run_demo", lambda **k: pytest.fail("the demo ran"))
    code, out, err = _run(["demo", "--methods", "IVLP", "--no-video", "--quiet"], capsys)
    line = _one_line(err, "demo")
    assert code == 2 and "--no-video skips the video task, and with it ['IVLP']" in line and "drop --no-video" in line


def test_silent_demo_repeated_seeds_are_refused(capsys, monkeypatch):
    import prompt_plugins.demo as demo

    monkeypatch.setattr(demo, "run_demo", lambda **k: pytest.fail("the demo ran"))
    code, out, err = _run(["demo", "--seeds", "1", "1", "--quiet"], capsys)
    line = _one_line(err, "demo")
    assert code == 2 and "--seeds 1 1 repeats seed(s) [1]" in line and "distinct seeds" in line


# ---------------------------------------------------------------------------- clip's import warning
def test_unclear_clip_pkg_resources_warning_is_not_printed(world):
    """A subprocess, so that ``clip`` is imported afresh (about 5 s)."""
    _, _, folder = world
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    bare = subprocess.run([sys.executable, "-c", "import clip"], cwd=REPO, env=env, capture_output=True, text=True)
    if "pkg_resources" not in bare.stderr:
        pytest.skip("this clip / setuptools prints no pkg_resources warning: nothing to silence")
    run = subprocess.run([sys.executable, "-m", "prompt_plugins", "eval", *folder, "--shots", "2", "--quiet"],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "pkg_resources" not in run.stderr, run.stderr
    other = subprocess.run([sys.executable, "-c", "from prompt_plugins.backends.openai_clip import import_clip; "
                            "import_clip(); import warnings; warnings.warn('still shown')"], cwd=REPO, env=env,
                           capture_output=True, text=True)
    assert "still shown" in other.stderr and "pkg_resources" not in other.stderr, other.stderr
