"""Bad command lines (issue 15): every failure exits with status 2 and one line ``prompt-plugins CMD: error: ...``
(argparse's own ``argument --x: ...`` for a value of the wrong type), never a traceback, and leaves the disk as it
was. Ids start with the kind of behaviour each case had before (``bad_cases``); the ``train`` flags issue 14
already checks are in ``test_runs.py`` (its ``BAD`` list), the ones here are those it does not list."""
import json

import pytest
import torch

pytest.importorskip("clip")
PIL = pytest.importorskip("PIL.Image")

import prompt_plugins as pp  # noqa: E402
from prompt_plugins.checkpoint import CONFIG_NAME, WEIGHTS_NAME  # noqa: E402
from prompt_plugins.cli import main  # noqa: E402
from bad_cases import tree  # noqa: E402
from tiny_models import make_openai  # noqa: E402

COLOURS = {"red circle": (220, 30, 30), "blue square": (30, 30, 220), "green bar": (30, 200, 30)}
BIG = 3 * 2**30


def _images(root, names=COLOURS):
    """The generic ``imagefolder`` layout: root/{train,test}/<class>/*.png."""
    for split in ("train", "test"):
        for name, rgb in names.items():
            folder = root / split / name.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(2):
                PIL.new("RGB", (36, 36), rgb).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    path = tmp_path_factory.mktemp("backbone") / "tiny-clip.pt"
    torch.save(make_openai().state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _images(tmp_path_factory.mktemp("data"))


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _exit_status(argv, capsys):
    """(status, stderr) whether argparse exits (a value of the wrong type) or the command returns."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _data_args(data, backbone):
    return ["--dataset", "imagefolder", "--root", data, "--backbone", backbone]


def _train(data, backbone, out, *extra):
    argv = ["train", *_data_args(data, backbone), "--out", out, "--epochs", "1", "--warmup-epochs", "0",
            "--batch-size", "2", "--shots", "2", "--n-ctx", "2", "--quiet", *extra]
    return [str(a) for a in argv]


def _eval(data, backbone, *extra):
    return ["eval", *_data_args(data, backbone), "--quiet", *extra]


def _written(path, text):
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------- numbers refused before any work
@pytest.mark.parametrize("extra, words", [
    pytest.param(["--lr", "inf"], ("--lr inf is out of range", "finite"), id="ok-infinite-lr"),
    pytest.param(["--lr", "fast"], ("argument --lr", "invalid float value"), id="ok-lr-not-a-number"),
    pytest.param(["--n-ctx", "0"], ("--n-ctx 0 is out of range", ">= 1"), id="ok-zero-context-tokens"),
    pytest.param(["--depth", "0"], ("--depth 0 is out of range",), id="ok-zero-depth"),
    pytest.param(["--top-k", "0"], ("--top-k 0 is out of range",), id="ok-zero-top-k"),
    pytest.param(["--weight-decay", "-1"], ("--weight-decay -1.0 is out of range", ">= 0"),
                 id="ok-negative-weight-decay"),
    pytest.param(["--warmup-epochs", "-1"], ("--warmup-epochs -1 is out of range",), id="ok-negative-warmup"),
    pytest.param(["--threads", "-1"], ("--threads -1 is out of range",), id="ok-negative-threads"),
    pytest.param(["--seeds", "-3"], ("--seeds -3 is out of range",), id="ok-negative-seed"),
    pytest.param(["--anchor-weight", "nan"], ("--anchor-weight nan is out of range",), id="ok-nan-anchor-weight"),
    pytest.param(["--set", "lr=-1"], ("--lr -1 is out of range",), id="ok-negative-lr-through-set"),
    pytest.param(["--set", "epochs=1.5"], ("--epochs 1.5 is out of range", "integer"), id="ok-fractional-epochs-set"),
])
def test_bad_numbers_for_train(data, backbone, tmp_path, capsys, extra, words):
    code, err = _exit_status(_train(data, backbone, tmp_path / "out", *extra), capsys)
    assert code == 2 and all(w in err for w in words), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, words", [
    pytest.param(["demo", "--threads", "-1"], ("argument --threads", ">= 0"), id="crash-demo-negative-threads"),
    pytest.param(["demo", "--seeds", "-3"], ("argument --seeds",), id="crash-demo-negative-seed"),
])
def test_bad_numbers_for_demo(capsys, argv, words):
    code, err = _exit_status(argv, capsys)
    assert code == 2 and all(w in err for w in words), err


@pytest.mark.parametrize("item, words", [
    pytest.param("steps=abc", ("--set 'steps=abc'", "is not a number"), id="crash-demo-set-not-a-number"),
    pytest.param("=3", ("--set expects KEY=VALUE",), id="unclear-demo-set-without-key"),
])
def test_bad_demo_overrides_fail_before_the_demo_runs(capsys, item, words):
    code, err = _run(["demo", "--set", item, "--quiet"], capsys)
    assert code == 2 and err.startswith("prompt-plugins demo: error:") and all(w in err for w in words), err


# ---------------------------------------------------------------------------- train / eval
def test_safety_train_refuses_an_existing_adapter_before_training(data, backbone, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train(data, backbone, out)) == 0
    before = tree(out)
    code, err = _run(_train(data, backbone, out), capsys)
    assert code == 2 and "already holds an adapter" in err and "--overwrite" in err, err
    assert tree(out) == before
    assert main(_train(data, backbone, out, "--overwrite", "--n-ctx", "3")) == 0
    assert tree(out) != before


@pytest.mark.parametrize("make, words", [
    pytest.param(lambda p: (p / "seed1" / WEIGHTS_NAME).mkdir(parents=True) or p,
                 ("seed1", WEIGHTS_NAME, "is a directory"), id="crash-train-seed-folder-holds-a-folder-named-like-weights"),
    pytest.param(lambda p: (p / "seed1" / CONFIG_NAME).mkdir(parents=True) or p,
                 ("seed1", CONFIG_NAME, "is a directory"), id="crash-train-seed-folder-holds-a-folder-named-like-config"),
    pytest.param(lambda p: _written(p.parent / "seed1", "x") and p.parent, ("seed1", "is a file"),
                 id="crash-train-seed-folder-is-a-file"),
])
def test_bad_out_fails_before_training(data, backbone, tmp_path, capsys, make, words):
    out = make(tmp_path / "out")
    before = tree(tmp_path)
    code, err = _run(_train(data, backbone, out, "--overwrite"), capsys)
    assert code == 2 and all(w in err for w in words) and "epoch" not in err, err
    assert tree(tmp_path) == before


def test_crash_train_out_under_a_file_fails_before_training(data, backbone, tmp_path, capsys):
    _written(tmp_path / "notes", "x")
    before = tree(tmp_path)
    code, err = _run(_train(data, backbone, tmp_path / "notes" / "run"), capsys)
    assert code == 2 and "cannot be created" in err and "notes' is a file" in err and "epoch" not in err, err
    assert tree(tmp_path) == before


def test_unclear_classnames_file_that_is_a_folder(tmp_path, capsys):
    src = tmp_path / "model.pth.tar-5"
    torch.save({"state_dict": {"ctx": torch.zeros(2, 64)}, "epoch": 5}, src)
    code, err = _run(["convert", src, tmp_path / "out", "--classnames", tmp_path], capsys)
    assert code == 2 and "class-name file" in err and "is a folder" in err, err
    assert not (tmp_path / "out").exists()


def test_ok_train_unknown_method_fails_before_loading(data, backbone, tmp_path, capsys):
    code, err = _exit_status(_train(data, backbone, tmp_path / "out", "--method", "lora"), capsys)
    assert code == 2 and "argument --method" in err and "invalid choice: 'lora'" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("folders, words", [
    pytest.param({"red circle": (1, 2, 3)}, ("class folders 'red circle' and 'red_circle'", "both read as the class"),
                 id="silent-folders-with-space-and-underscore"),
    pytest.param({"Red_Circle": (1, 2, 3)}, ("'Red Circle'", "'red circle'", "differ only by case"),
                 id="silent-folders-differing-by-case"),
    pytest.param({"red_circle_": (1, 2, 3)}, ("'red circle '", "differ only by case, spaces"),
                 id="silent-folders-differing-by-a-trailing-underscore"),
])
def test_class_folders_that_collapse_into_one_class(tmp_path, backbone, capsys, folders, words):
    data = _images(tmp_path / "data")
    for name, rgb in folders.items():
        for split in ("train", "test"):
            (data / split / name).mkdir()
            PIL.new("RGB", (36, 36), rgb).save(data / split / name / "x.png")
    code, err = _run(_eval(data, backbone), capsys)
    assert code == 2 and err.startswith("prompt-plugins eval: error:") and all(w in err for w in words), err


def test_unclear_classnames_file_with_duplicate_names(data, backbone, tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("red_circle red circle\nblue_square Red Circle\ngreen_bar green bar\n")
    code, err = _run(_eval(data, backbone, "--classnames", names), capsys)
    assert code == 2 and "names.txt" in err and "differ only by case" in err, err


def test_silent_eval_of_a_class_specific_adapter_on_other_classes(data, backbone, tmp_path, capsys):
    model = make_openai()
    csc = pp.wrap(model, ["cat", "dog", "cow"], n_ctx=2, class_specific=True)
    pp.save_pretrained(csc, tmp_path / "csc")
    before = tree(tmp_path / "csc")
    code, err = _run(_eval(data, backbone, "--adapter", tmp_path / "csc"), capsys)
    assert code == 2 and "class-specific context for 3 classes" in err and "'cat'" in err, err
    assert tree(tmp_path / "csc") == before


# ---------------------------------------------------------------------------- bogus files
def _sparse(path, head=b""):
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(BIG)
    return path


@pytest.mark.parametrize("make, words", [
    pytest.param(lambda p: _sparse(p), ("is not a PyTorch checkpoint", "starts with the bytes"),
                 id="resource-backbone-3gib-sparse-file"),
    pytest.param(lambda p: _sparse(p, b"PK\x03\x04"), ("no valid zip directory",), id="resource-backbone-fake-zip"),
    pytest.param(lambda p: _written(p, "ViT-B/16"), ("is not a PyTorch checkpoint",),
                 id="unclear-backbone-text-file"),
])
def test_bogus_backbone_is_refused_from_its_header(data, tmp_path, capsys, make, words):
    path = make(tmp_path / "clip.pt")
    code, err = _run(_eval(data, path), capsys)
    assert code == 2 and err.startswith("prompt-plugins eval: error:") and all(w in err for w in words), err


def test_resource_inspect_of_a_3gib_bogus_weights_file(backbone, tmp_path, capsys):
    prompted = pp.wrap(make_openai(), ["cat", "dog"], n_ctx=2)
    pp.save_pretrained(prompted, tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    _sparse(tmp_path / WEIGHTS_NAME)
    code, err = _run(["inspect", tmp_path], capsys)
    assert code == 2 and "declare a 0-byte JSON header" in err and "not read further" in err, err


def test_unclear_inspect_of_a_file(tmp_path, capsys):
    (tmp_path / "a.json").write_text("{}")
    code, err = _run(["inspect", tmp_path / "a.json"], capsys)
    assert code == 2 and "is a file; pass the adapter directory" in err, err


@pytest.mark.parametrize("allow", [pytest.param([], id="unclear-convert-garbage"),
                                   pytest.param(["--allow-unsafe"], id="crash-convert-garbage-allow-unsafe")])
def test_convert_of_a_garbage_file(tmp_path, capsys, allow):
    src = tmp_path / "model.pth"
    src.write_bytes(bytes(range(256)) * 8)
    code, err = _run(["convert", src, tmp_path / "out", *allow], capsys)
    assert code == 2 and "is not a PyTorch checkpoint" in err and "arbitrary code" not in err, err
    assert not (tmp_path / "out").exists()


def test_safety_convert_refuses_an_existing_adapter(tmp_path, capsys):
    src = tmp_path / "model.pth.tar-5"
    state = {"ctx": torch.zeros(2, 64), "token_prefix": torch.zeros(2, 1, 64), "token_suffix": torch.zeros(2, 74, 64)}
    torch.save({"state_dict": state, "epoch": 5}, src)
    out = tmp_path / "out"
    assert main(["convert", str(src), str(out), "--format", "coop"]) == 0
    before = tree(out)
    code, err = _run(["convert", src, out, "--format", "coop"], capsys)
    assert code == 2 and "already holds an adapter" in err, err
    assert tree(out) == before
    assert main(["convert", str(src), str(out), "--format", "coop", "--overwrite"]) == 0
    assert json.loads((out / CONFIG_NAME).read_text())["method"] == "coop"
