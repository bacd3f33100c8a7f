"""``prompt-plugins train | eval | inspect`` end to end on tiny inputs (the generic ``imagefolder`` layout), and
clear errors. The data-set layouts, every method, resume and argument checks: ``tests/test_runs.py``."""
import json

import pytest
import torch

pytest.importorskip("clip")
PIL = pytest.importorskip("PIL.Image")

from prompt_plugins.cli import main  # noqa: E402
from tiny_models import make_openai  # noqa: E402

COLOURS = {"red circle": (220, 30, 30), "blue square": (30, 30, 220), "green bar": (30, 200, 30)}


def _images(root, per_class=2, names=COLOURS, test=1):
    """The generic layout: root/train/<class>/*.png and root/test/<class>/*.png."""
    for split, count in (("train", per_class), ("test", test)):
        for name, rgb in names.items():
            folder = root / split / name.replace(" ", "_")
            folder.mkdir(parents=True)
            for i in range(count):
                PIL.new("RGB", (40 + 4 * i, 36), rgb).save(folder / f"{i}.png")
    return root


@pytest.fixture
def backbone(tmp_path):
    path = tmp_path / "tiny-clip.pt"
    torch.save(make_openai().state_dict(), path)
    return str(path)


TINY = ["--epochs", "1", "--warmup-epochs", "0", "--batch-size", "2", "--shots", "2", "--quiet"]


def test_train_inspect_eval_round_trip(tmp_path, backbone, capsys):
    data = _images(tmp_path / "data")
    out = tmp_path / "run"
    assert main(["train", "--dataset", "imagefolder", "--root", str(data), "--backbone", backbone, "--out", str(out),
                 "--n-ctx", "4", *TINY]) == 0
    assert "3 classes (2 base / 1 new)" in capsys.readouterr().out
    config = json.loads((out / "seed1" / "adapter_config.json").read_text())
    assert config["classnames"] == ["blue square", "green bar", "red circle"]
    assert config["run"]["base_classes"] == ["blue square", "green bar"] and config["run"]["seed"] == 1
    assert main(["inspect", str(out / "seed1")]) == 0
    text = capsys.readouterr().out
    assert "prompt.ctx" in text and "(4, 64)" in text and "1 tensors, 256 parameters" in text
    assert main(["eval", "--adapter", str(out), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["base", "new", "HM"] and len(lines[2].split()) == 3
    assert float(lines[2].split()[1]) == 100.0  # one new class: always right


def test_eval_zero_shot_on_frame_folders_with_classnames_file(tmp_path, backbone, capsys):
    root = tmp_path / "videos"
    for split in ("train", "test"):
        for name, rgb in COLOURS.items():
            for v in range(2):
                frames = root / split / name.replace(" ", "_") / f"clip{v}"
                frames.mkdir(parents=True)
                for t in range(3):
                    PIL.new("RGB", (32, 32), tuple(max(0, c - 20 * t) for c in rgb)).save(frames / f"{t:03d}.jpg")
    names = tmp_path / "names.txt"
    names.write_text("red_circle red circle\nblue_square blue square\ngreen_bar green bar\n")
    assert main(["eval", "--dataset", "imagefolder", "--root", str(root), "--backbone", backbone, "--classnames",
                 str(names), "--frames", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "zero-shot CLIP: imagefolder (coop-base2new), zero-shot; test items: 4 base / 2 new" in out


@pytest.mark.parametrize("case, message", [
    ("empty", "is empty"),
    ("one_class", "at least 2"),
    ("missing_names", "does not exist"),
    ("unreadable", "cannot read image"),
    ("no_backbone", "is not a file on disk"),
    ("other_split", "was trained on other classnames"),
])
def test_bad_inputs_exit_2_with_clear_message(tmp_path, backbone, capsys, case, message):
    data = tmp_path / "data"
    extra: list[str] = []
    if case == "empty":
        _images(data)
        (data / "train" / "purple_ring").mkdir()
    elif case == "one_class":
        _images(data, names={"red circle": (200, 0, 0)})
    elif case == "missing_names":
        _images(data)
        extra = ["--classnames", str(tmp_path / "nope.txt")]
    elif case == "unreadable":
        _images(data)
        (data / "test" / "red_circle" / "broken.png").write_bytes(b"not a png")
    elif case == "no_backbone":
        _images(data)
        backbone = str(tmp_path / "missing.pt")
    else:  # an adapter evaluated on a data set that gives other classes: an error, not a silent re-split
        _images(data)
        assert main(["train", "--dataset", "imagefolder", "--root", str(data), "--backbone", backbone, "--out",
                     str(tmp_path / "run"), "--n-ctx", "2", *TINY]) == 0
        (data / "train" / "purple_ring").mkdir()
        PIL.new("RGB", (40, 36), (120, 0, 120)).save(data / "train" / "purple_ring" / "0.png")
        capsys.readouterr()
        code = main(["eval", "--adapter", str(tmp_path / "run" / "seed1"), "--root", str(data), "--quiet"])
        assert code == 2 and message in capsys.readouterr().err
        return
    code = main(["eval", "--dataset", "imagefolder", "--root", str(data), "--backbone", backbone, "--quiet", *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("prompt-plugins eval: error:") and message in err


def test_inspect_missing_adapter(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
