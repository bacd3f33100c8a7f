"""The procedural world: class names, split, determinism per seed, downstream shift, cached pretraining."""
import numpy as np
import pytest
import torch

pytest.importorskip("clip")
from prompt_plugins.errors import ConfigError  # noqa: E402
from prompt_plugins.demo.world import World, downstream_split, load_or_pretrain, preset, pretrain_batch  # noqa: E402
from prompt_plugins.demo.world.data import render_labels  # noqa: E402

TINY = preset("tiny")


def test_default_world_has_64_compositional_classes_with_disjoint_base_new_colours():
    world = World(preset("default"))
    assert len(world.classnames) == 64 and world.classnames[0] == "red circle"
    assert world.video_name(0, "moving left") == "red circle moving left"
    base_colours = {world.classnames[i].split()[0] for i in world.base}
    new_colours = {world.classnames[i].split()[0] for i in world.new}
    assert len(world.base) == len(world.new) == 32 and not base_colours & new_colours


def test_split_is_deterministic_per_seed_and_test_sets_do_not_depend_on_it():
    a, b, c = downstream_split(TINY, 1), downstream_split(TINY, 1), downstream_split(TINY, 2)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_new_x, b.test_new_x)
    assert not torch.equal(a.train_x, c.train_x)
    assert torch.equal(a.test_base_x, c.test_base_x)
    assert a.train_x.shape == (TINY.shots * 8, 3, 32, 32)
    assert set(a.train_y.tolist()) == set(World(TINY).base) and set(a.test_new_y.tolist()) == set(World(TINY).new)


def test_videos_have_frames_and_move():
    v = downstream_split(TINY.with_(frames=4), 1, video=True)
    assert v.train_x.shape[1:] == (4, 3, 32, 32)
    assert (v.train_x[:, 0] - v.train_x[:, -1]).abs().amax() > 0.5  # frames differ


def test_pretrain_batches_are_deterministic_and_captions_name_the_class():
    x1, y1, c1 = pretrain_batch(TINY, np.random.default_rng(3))
    x2, y2, c2 = pretrain_batch(TINY, np.random.default_rng(3))
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and c1 == c2
    world = World(TINY)
    names = world.pretrain_classnames  # base, new and the source classes GA2's hard prompt is tuned on
    assert names[: world.n_classes] == world.classnames
    assert all(c.rstrip(".").endswith(names[y]) for c, y in zip(c1, y1.tolist()))


def test_shift_changes_downstream_images_only():
    labels = np.zeros(64, dtype=np.int64)
    plain = render_labels(TINY, np.random.default_rng(0), labels, shifted=False)
    shifted = render_labels(TINY, np.random.default_rng(0), labels, shifted=True)
    # striped, noisier backgrounds: more pixel variance than the plain dark backgrounds
    assert shifted.std() > plain.std() * 1.05 or (shifted - plain).abs().mean() > 0.1


def test_config_validation_and_cache_key():
    with pytest.raises(ConfigError, match="unknown world option"):
        TINY.with_(colours=3)
    assert TINY.key() != TINY.with_(pretrain_steps=21).key()
    assert TINY.key() == TINY.with_(shots=5).key()  # downstream-only fields keep the checkpoint


def test_pretraining_is_cached_deterministic_and_keeps_logit_scale(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_PLUGINS_CACHE", str(tmp_path))
    cfg = TINY.with_(pretrain_steps=3)
    m1, cached1, _ = load_or_pretrain(cfg, progress=False, log=lambda *_: None)
    m2, cached2, _ = load_or_pretrain(cfg, progress=False, log=lambda *_: None)
    assert (cached1, cached2) == (False, True)
    assert list(tmp_path.glob("world-*.pt"))
    for (k, v), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(v, v2), k
    assert m1.logit_scale.exp().item() == pytest.approx(100.0, rel=1e-5)
    (tmp_path / f"world-{cfg.key()}.pt").unlink()
    m3, cached3, _ = load_or_pretrain(cfg, progress=False, log=lambda *_: None)
    assert not cached3 and all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m3.state_dict().values()))


def test_caption_encoder_cut_at_eot_equals_clip_encode_text():
    import clip

    from prompt_plugins.demo.world.pretrain import build_clip, encode_captions

    cfg = preset("tiny")
    torch.manual_seed(0)
    model = build_clip(cfg).eval()
    tokens = clip.tokenize(["a photo of a red circle.", "a blue half circle.", "a."], context_length=cfg.context_length)
    with torch.no_grad():
        torch.testing.assert_close(encode_captions(model, tokens), model.encode_text(tokens), atol=1e-5, rtol=0)
