"""``prompt-plugins demo`` on the tiny world: the table, the cache, and what each runner claims to do."""
import pytest
import torch

pytest.importorskip("clip")

from prompt_plugins.cli import main  # noqa: E402

ROWS = [("zero-shot", "image"), ("CoOp", "image"), ("CoOp same budget", "image"), ("CoOp+DPC", "image"),
        ("zero-shot", "video"), ("IVLP", "video"), ("GA2 w/o anchors", "video"), ("GA2", "video"),
        ("GA2+DPC", "video")]


def test_demo_runs_tiny_world_prints_table_and_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path / "cache"))
    plot = tmp_path / "demo.png"
    args = ["demo", "--world", "tiny", "--set", "pretrain_steps=2", "--seeds", "1", "2", "--quiet", "--plot", str(plot)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pretrained" in out and plot.stat().st_size > 1000
    for name, task in ROWS:
        line = next(row for row in out.splitlines() if row.startswith(f"{name:<17} {task}"))
        assert len(line.split()) == 5 + len(name.split()), line  # name, task, base, new, HM, seconds
    assert main(["demo", "--world", "tiny", "--set", "pretrain_steps=2", "--methods", "zero-shot", "--quiet"]) == 0
    assert "loaded" in capsys.readouterr().out  # the second run loads the cached checkpoint


def test_demo_rejects_unknown_method(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path))
    assert main(["demo", "--world", "tiny", "--methods", "nope", "--quiet"]) == 2
    assert "selects nothing" in capsys.readouterr().err


def test_demo_runners_do_what_each_method_claims(tmp_path, monkeypatch):
    """DPC rows keep exactly their backbone's new-class accuracy and move base; GA2's hard prompt is the source
    run's layer-0 context, its visual prompts train, and the anchor loss changes what it learns."""
    from prompt_plugins.demo import image, runners, video
    from prompt_plugins.demo.world import World, load_or_pretrain, preset

    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path))
    cfg = preset("tiny").with_(pretrain_steps=2)
    world = World(cfg)
    model, _, _ = load_or_pretrain(cfg, progress=False, log=lambda *a: None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ctx = runners.Context(cfg, world, model, 1, progress=False)
    results = {name: run(ctx) for name, run in (
        ("coop", image.run_coop), ("coop_dpc", image.run_coop_dpc), ("ga2_plain", video.run_ga2_no_anchors),
        ("ga2", video.run_ga2), ("ga2_dpc", video.run_ga2_dpc))}
    assert results["coop_dpc"][1] == results["coop"][1] and results["ga2_dpc"][1] == results["ga2"][1]
    ga2, plain = ctx.artifacts["ga2/video"], ctx.artifacts["ga2-no-anchors/video"]
    assert torch.equal(ga2["prompt.hard"], ctx.shared["hard_prompt"])
    assert ga2["prompt.soft.visual"].abs().sum() > 0 and not torch.equal(ga2["prompt.soft.visual"], plain["prompt.soft.visual"])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # CLIP untouched
    assert not any(m._forward_pre_hooks for m in model.modules())  # every runner ejected its adapter


def test_tasks_side_by_side_give_the_sequential_table(tmp_path, monkeypatch):
    """``jobs=2`` runs the two lanes in two spawned processes (model weights sent, not re-trained): same rows,
    same order, same accuracies as one process."""
    from prompt_plugins.demo import run_demo

    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path))
    torch.set_num_threads(2)
    kwargs = dict(world="tiny", overrides={"pretrain_steps": 2}, methods=["zero-shot", "CoOp", "IVLP"], progress=False)
    two = run_demo(jobs=2, **kwargs)
    one = run_demo(jobs=1, **kwargs)
    assert list(two) == list(one) == [("zero-shot", "image"), ("CoOp", "image"), ("zero-shot", "video"), ("IVLP", "video")]
    assert all([r[:2] for r in two[k]] == [r[:2] for r in one[k]] for k in one)
    with pytest.raises(Exception, match="jobs=-1"):
        run_demo(jobs=-1, **kwargs)


def test_feature_model_scores_with_the_backbone_text_encoded_once(tmp_path, monkeypatch):
    """DPC's stage 2 scores every step with the frozen backbone P: its text features are encoded once per class
    selection, give the logits a fresh encoding gives, and are re-encoded after ``clear_cache()``."""
    from prompt_plugins.demo import runners
    from prompt_plugins.demo.world import World, load_or_pretrain, preset
    from prompt_plugins.methods.dpc import DualPromptWrapper
    from prompt_plugins.training import FeatureModel, eval_mode

    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path))
    cfg = preset("tiny").with_(pretrain_steps=2)
    model, _, _ = load_or_pretrain(cfg, progress=False, log=lambda *a: None)
    ctx = runners.Context(cfg, World(cfg), model, 1, progress=False)
    with ctx.attached("coop", "image") as prompted:
        wrapper = DualPromptWrapper(prompted, ctx.base_names)
        head, calls = FeatureModel(wrapper, 100.0), []
        encode = wrapper.encode_text
        monkeypatch.setattr(wrapper, "encode_text", lambda *a, **k: calls.append(k.get("route")) or encode(*a, **k))
        feats = torch.nn.functional.normalize(torch.randn(5, cfg.embed_dim), dim=-1)
        first = head.backbone_logits(feats)
        with torch.no_grad():
            wrapper.trainable_parameters()[0].add_(1.0)  # X moves; P (the scores) must not
        assert torch.equal(head.backbone_logits(feats), first) and calls == ["backbone"]
        with eval_mode(wrapper), torch.no_grad():
            fresh = 100.0 * feats @ encode(None, route="backbone").t()
        assert torch.allclose(first, fresh, atol=1e-5)
        head.backbone_logits(feats, classes=torch.tensor([0, 1]))
        assert calls == ["backbone", "backbone"]  # another class selection: encoded once more
        head.clear_cache()
        head.backbone_logits(feats)
        assert calls == ["backbone"] * 3
        wrapper.set_classnames(list(reversed(ctx.world.classnames)), base_classes=ctx.base_names)
        assert not torch.equal(head.backbone_logits(feats), first)  # another class list: encoded again
        assert calls == ["backbone"] * 4
        wrapper.unwrap()


def test_hard_prompt_is_trained_once_per_world_and_cached(tmp_path, monkeypatch):
    """GA2's hard prompt is one tensor per world (seed 0, like a released file): a later run of any seed loads it
    from the cache instead of retraining."""
    from prompt_plugins.demo import runners, video
    from prompt_plugins.demo.world import World, load_or_pretrain, preset

    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path))
    cfg = preset("tiny").with_(pretrain_steps=2)
    world = World(cfg)
    model, _, _ = load_or_pretrain(cfg, progress=False, log=lambda *a: None)
    first = video.hard_prompt(runners.Context(cfg, world, model, 1, progress=False))
    assert video.hard_prompt_path(runners.Context(cfg, world, model, 1, progress=False)).is_file()
    monkeypatch.setattr(video, "_train_hard_prompt", lambda ctx: pytest.fail("retrained a cached hard prompt"))
    again = video.hard_prompt(runners.Context(cfg, world, model, 2, progress=False))
    assert torch.equal(first, again) and first.abs().sum() > 0


def test_rows_do_not_depend_on_which_methods_run(tmp_path, monkeypatch):
    """A runner trains the same prompts whether it builds the task's data itself or finds it built, and whether it
    runs as its own row or on demand for a later row (GA2+DPC asking for GA2's prompts): ``--methods GA2`` and
    the lanes print the rows of the full sequential run."""
    from prompt_plugins.demo import runners, video
    from prompt_plugins.demo.world import World, load_or_pretrain, preset
    from prompt_plugins.training import seeded

    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path))
    cfg = preset("tiny").with_(pretrain_steps=2)
    world = World(cfg)
    model, _, _ = load_or_pretrain(cfg, progress=False, log=lambda *a: None)

    def ga2_prompts(*fns):
        ctx = runners.Context(cfg, world, model, 1, progress=False)
        for fn in fns:  # as run_lane runs a lane's rows
            seeded(1, lambda: fn(ctx))
        return ctx.artifacts["ga2/video"]

    full = ga2_prompts(video.run_ga2_no_anchors, video.run_ga2)  # the task's data built by the first row
    for alone in (ga2_prompts(video.run_ga2), ga2_prompts(video.run_ga2_dpc)):
        assert alone.keys() == full.keys() and all(torch.equal(alone[k], full[k]) for k in full)


def test_damaged_cache_files_are_named_with_the_fix(tmp_path, monkeypatch, capsys):
    """A truncated cached tiny CLIP or hard prompt is a ``CheckpointError`` naming the file and saying to delete
    it (the CLI: one ``error:`` line, status 2), never a torch traceback or a silent retrain over it."""
    from prompt_plugins.demo import runners, video
    from prompt_plugins.demo.world import World, load_or_pretrain, preset
    from prompt_plugins.demo.world.pretrain import checkpoint_path
    from prompt_plugins.errors import CheckpointError

    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path))
    cfg = preset("tiny").with_(pretrain_steps=2)
    model, _, _ = load_or_pretrain(cfg, progress=False, log=lambda *a: None)
    ctx = runners.Context(cfg, World(cfg), model, 1, progress=False)
    path = video.hard_prompt_path(ctx)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match=r"cached hard prompt .*hard-prompt-.*\.pt is unreadable .*delete it"):
        video.hard_prompt(ctx)
    assert path.read_bytes() == b"PK\x03\x04 truncated"  # left for the user to inspect, not overwritten
    world = checkpoint_path(cfg)
    world.write_bytes(world.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"cached world checkpoint .*world-.*\.pt is unreadable .*delete it"):
        load_or_pretrain(cfg, progress=False, log=lambda *a: None)
    capsys.readouterr()
    assert main(["demo", "--world", "tiny", "--set", "pretrain_steps=2", "--methods", "zero-shot", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "delete it to retrain" in err and "Traceback" not in err


def test_unwritable_cache_warns_and_the_demo_goes_on(tmp_path, monkeypatch, capsys):
    """A cache that cannot be written (here its folder is a file) costs the cache, not the run: the tiny CLIP and
    the hard prompt are used from memory after one warning line each."""
    from prompt_plugins.demo import runners, video
    from prompt_plugins.demo.world import World, load_or_pretrain, preset

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(blocker / "cache"))
    cfg = preset("tiny").with_(pretrain_steps=2)
    model, cached, _ = load_or_pretrain(cfg, progress=False, log=print)
    ctx = runners.Context(cfg, World(cfg), model, 1, progress=False)
    prompt = video.hard_prompt(ctx)
    out = capsys.readouterr().out
    assert not cached and prompt.abs().sum() > 0 and blocker.read_text() == "x"
    assert out.count("warning: could not cache") == 2 and "world-" in out and "hard-prompt-" in out


def test_saving_prompts_drops_the_test_features_of_the_old_ones(tmp_path, monkeypatch):
    """``evaluate_clips(features=key)`` reuses features only while the prompts saved as ``key`` are the ones that
    made them: a runner that trains ``key`` again is scored with its own prompts."""
    from prompt_plugins.demo import runners
    from prompt_plugins.demo.world import World, load_or_pretrain, preset

    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path))
    cfg = preset("tiny").with_(pretrain_steps=2)
    model, _, _ = load_or_pretrain(cfg, progress=False, log=lambda *a: None)
    ctx = runners.Context(cfg, World(cfg), model, 1, progress=False)
    task = ctx.task("video")
    with ctx.attached("ivlp", "video") as prompted:
        ctx.save("ivlp/video", prompted)
        ctx.evaluate_clips(task, prompted, features="ivlp/video")
        assert "ivlp/video" in ctx.features
        ctx.save("ivlp/video", prompted)
        assert "ivlp/video" not in ctx.features
