"""``prompt-plugins demo | train | eval | inspect`` end to end on tiny inputs, and clear errors."""
import json

import pytest
import torch

pytest.importorskip("clip")
PIL = pytest.importorskip("PIL.Image")

import prompt_plugins as pp  # noqa: E402
from prompt_plugins.cli import main  # noqa: E402
from tiny_models import make_openai  # noqa: E402

COLOURS = {"red circle": (220, 30, 30), "blue square": (30, 30, 220), "green bar": (30, 200, 30)}


def _images(root, per_class=2, names=COLOURS):
    for name, rgb in names.items():
        folder = root / name.replace(" ", "_")
        folder.mkdir(parents=True)
        for i in range(per_class):
            PIL.new("RGB", (40 + 4 * i, 36), rgb).save(folder / f"{i}.png")
    return root


@pytest.fixture
def backbone(tmp_path):
    path = tmp_path / "tiny-clip.pt"
    torch.save(make_openai().state_dict(), path)
    return str(path)


def test_demo_runs_tiny_world_prints_table_and_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path / "cache"))
    plot = tmp_path / "demo.png"
    args = ["demo", "--world", "tiny", "--set", "pretrain_steps=2", "--steps", "2", "--seeds", "1", "2",
            "--quiet", "--plot", str(plot)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pretrained" in out and plot.stat().st_size > 1000
    for row in ("zero-shot    image", "CoOp         image", "CoOp+DPC     image", "zero-shot    video",
                "CoOp         video", "GA2          video", "GA2+DPC      video"):
        line = next(l for l in out.splitlines() if l.startswith(row))
        assert len(line.split()) == 6, line  # name task base new HM seconds
    assert main(args[:-2]) == 0  # second run loads the cached checkpoint
    assert "loaded" in capsys.readouterr().out


def test_demo_runners_dpc_keeps_backbone_new_classes_and_ga2_trains(tmp_path, monkeypatch):
    """DPC rows (w_n = 0): new classes use exactly the tuned backbone prompt, base classes the
    trained parallel prompt; GA2's hard prompt is the image CoOp context and its soft side trains."""
    from prompt_plugins.demo import runners as demo
    from prompt_plugins.demo.world import World, load_or_pretrain, preset

    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path))
    cfg = preset("tiny").with_(pretrain_steps=2)
    world = World(cfg)
    model, _, _ = load_or_pretrain(cfg, progress=False, log=lambda *a: None)
    ctx = demo.Context(cfg, world, model, 1, demo.build_tasks(cfg, world, model, 1, True, "cpu"), 5, 1e-2, 8,
                       False)
    assert ctx.tasks["video"].anchor_feats.shape == (demo.N_ANCHORS, cfg.embed_dim)
    for run, backbone_key, key in ((lambda c: demo.run_coop_dpc(c, "image"), "coop/image", "CoOp+DPC/image"),
                                   (demo.run_ga2_dpc, "ga2/video", "GA2+DPC/video")):
        run(ctx)
        backbone, wrapper = ctx.artifacts[backbone_key], ctx.artifacts[key]
        with torch.no_grad(), demo.eval_mode(wrapper):
            assert torch.equal(wrapper.encode_text(world.new), backbone.encode_text(world.new))
            assert not torch.allclose(wrapper.encode_text(world.base), backbone.encode_text(world.base))
    ga2 = ctx.artifacts["ga2/video"]
    assert torch.equal(ga2.prompt.hard, ctx.artifacts["coop/image"].prompt.ctx.detach())
    ctx.artifacts["GA2+DPC/video"].eject()  # one wrapper per model at a time; ga2's tensors stay readable
    fresh = demo.seeded(1, lambda: pp.wrap(model, world.classnames, method="ga2", hard_prompt=ga2.prompt.hard,
                                            n_visual_ctx=0))
    assert not torch.equal(fresh.prompt.proj.weight, ga2.prompt.proj.weight)  # trained


def test_demo_rejects_unknown_method(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path))
    assert main(["demo", "--world", "tiny", "--methods", "nope", "--quiet"]) == 2
    assert "selects nothing" in capsys.readouterr().err


def test_train_inspect_eval_round_trip(tmp_path, backbone, capsys):
    data = _images(tmp_path / "data")
    out = tmp_path / "adapter"
    assert main(["train", str(data), "--backbone", backbone, "--out", str(out), "--n-ctx", "4", "--steps", "3",
                 "--n-base", "2", "--quiet"]) == 0
    assert "3 classes (2 base, 1 new)" in capsys.readouterr().out
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["classnames"] == ["blue square", "green bar", "red circle"]
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "prompt.ctx" in text and "(4, 64)" in text and "1 tensors, 256 parameters" in text
    assert main(["eval", str(data), "--backbone", backbone, "--adapter", str(out), "--n-base", "2", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["base", "new", "HM"] and len(lines[2].split()) == 3
    assert float(lines[2].split()[1]) == 100.0  # one new class: always right


def test_eval_zero_shot_on_frame_folders_with_classnames_file(tmp_path, backbone, capsys):
    root = tmp_path / "videos"
    for name, rgb in COLOURS.items():
        for v in range(2):
            frames = root / name.replace(" ", "_") / f"clip{v}"
            frames.mkdir(parents=True)
            for t in range(3):
                PIL.new("RGB", (32, 32), tuple(max(0, c - 20 * t) for c in rgb)).save(frames / f"{t:03d}.jpg")
    names = tmp_path / "names.txt"
    names.write_text("red circle\nblue square\ngreen bar\n")
    assert main(["eval", str(root), "--backbone", backbone, "--classnames", str(names), "--frames", "2",
                 "--quiet"]) == 0
    assert "zero-shot: 6 items, 2 base / 1 new classes" in capsys.readouterr().out


@pytest.mark.parametrize("case, message", [
    ("empty", "is empty"),
    ("one_class", "at least 2"),
    ("missing_names", "does not exist"),
    ("unreadable", "cannot read image"),
    ("no_backbone", "is not a file on disk"),
    ("bad_split", "out of range"),
])
def test_bad_inputs_exit_2_with_clear_message(tmp_path, backbone, capsys, case, message):
    data = tmp_path / "data"
    extra: list[str] = []
    if case == "empty":
        _images(data)
        (data / "purple_ring").mkdir()
    elif case == "one_class":
        _images(data, names={"red circle": (200, 0, 0)})
    elif case == "missing_names":
        _images(data)
        extra = ["--classnames", str(tmp_path / "nope.txt")]
    elif case == "unreadable":
        _images(data)
        (data / "red_circle" / "broken.png").write_bytes(b"not a png")
    elif case == "no_backbone":
        _images(data)
        backbone = str(tmp_path / "missing.pt")
    else:
        _images(data)
        extra = ["--n-base", "7"]
    code = main(["eval", str(data), "--backbone", backbone, "--quiet", *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("prompt-plugins eval: error:") and message in err


def test_inspect_missing_adapter(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
