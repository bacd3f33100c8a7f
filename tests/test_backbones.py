"""``--backbone`` for what users fine-tuned: ViFi-CLIP checkpoints (``model`` dict, ``module.`` prefixes, no token
embedding), Text4Vis / GA2-CLIP backbone files and GA2 runs, read with the safe reader; ``convert --to-clip``;
and no network access ever (an uncached open_clip tag fails at once)."""
import socket
import time

import pytest
import torch

pytest.importorskip("clip")

from prompt_plugins.cli import main  # noqa: E402
from prompt_plugins.errors import ConfigError, UnsafeCheckpointError  # noqa: E402
from prompt_plugins.runs.backbone import load_backbone  # noqa: E402
from tiny_models import make_openai  # noqa: E402

TEXT_TOP = ("positional_embedding", "text_projection", "ln_final.", "token_embedding.")


def vifi_checkpoint(state):
    """ViFi-CLIP's ``{"model": ...}``: image_encoder / text_encoder under ``module.``, no token embedding."""
    model = {}
    for k, v in state.items():
        if k.startswith("visual."):
            model["module.image_encoder." + k[7:]] = v
        elif k.startswith("transformer.") or (k.startswith(TEXT_TOP) and not k.startswith("token_embedding")):
            model["module.text_encoder." + k] = v
        elif k == "logit_scale":
            model["module.logit_scale"] = v
    model["module.prompt_learner.complete_text_embeddings"] = torch.zeros(3, 77, 64)
    return {"model": model, "epoch": 10, "max_accuracy": 0.5}


def text4vis_checkpoint(state):
    return {"epoch": 30, "model_state_dict": {"module." + k: v for k, v in state.items()},
            "fusion_model_state_dict": {"frame_position_embeddings.weight": torch.zeros(8, 64)}}


def ga2_run(state):
    out = {}
    for k, v in state.items():
        if k.startswith("visual."):
            out["image_encoder." + k[7:]] = v
        elif k.startswith("transformer.") or k.startswith(TEXT_TOP):
            out["text_encoder." + k] = v
        else:
            out[k] = v
    out["prompt_learner.ctx_VPT"] = torch.zeros(16, 64)
    out["image_encoder.transformer.resblocks.1.VPT_shallow"] = torch.zeros(16, 64)
    return {"model_state_dict": out}


class Calls:
    def __reduce__(self):
        return print, ("this pickle runs code",)


@pytest.fixture
def tiny(tmp_path):
    model = make_openai()
    path = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), path)
    return model, path


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].float(), sb[k].float()) for k in sa)


@pytest.mark.parametrize("kind", ["vifi", "text4vis", "ga2"])
def test_fine_tuned_backbones_load_as_plain_clip(tmp_path, tiny, kind):
    model, base = tiny
    make = {"vifi": vifi_checkpoint, "text4vis": text4vis_checkpoint, "ga2": ga2_run}[kind]
    path = tmp_path / f"{kind}.pth"
    torch.save(make(model.state_dict()), path)
    loaded = load_backbone(str(path), str(base) if kind == "vifi" else None)
    assert same_weights(loaded, model)


def test_vifi_without_base_names_the_flag(tmp_path, tiny):
    model, _ = tiny
    path = tmp_path / "vifi.pth"
    torch.save(vifi_checkpoint(model.state_dict()), path)
    with pytest.raises(ConfigError, match="pass --backbone-base CLIP.pt"):
        load_backbone(str(path))


def test_a_pickle_that_runs_code_is_refused(tmp_path, tiny):
    model, _ = tiny
    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": model.state_dict(), "hook": Calls()}, path)
    with pytest.raises(UnsafeCheckpointError, match="would call builtins.print"):
        load_backbone(str(path))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_convert_to_clip_writes_a_plain_state_dict(tmp_path, tiny, capsys, suffix):
    model, base = tiny
    src = tmp_path / "vifi.pth"
    torch.save(vifi_checkpoint(model.state_dict()), src)
    out = tmp_path / f"clip{suffix}"
    assert main(["convert", str(src), str(out), "--to-clip", "--backbone", str(base)]) == 0
    assert "use it as --backbone" in capsys.readouterr().out
    assert same_weights(load_backbone(str(out)), model)
    assert main(["convert", str(src), str(out), "--to-clip", "--backbone", str(base)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err


def test_eval_zero_shot_with_a_vifi_backbone(tmp_path, tiny, capsys):
    import data_layouts as layouts

    model, base = tiny
    src = tmp_path / "vifi.pth"
    torch.save(vifi_checkpoint(model.state_dict()), src)
    root = layouts.imagefolder(tmp_path / "data", n_classes=3, train=1, test=1)
    assert main(["eval", "--dataset", "imagefolder", "--root", str(root), "--backbone", str(src), "--backbone-base",
                 str(base), "--quiet"]) == 0
    assert "test items: 2 base / 1 new" in capsys.readouterr().out


def test_uncached_open_clip_tag_fails_at_once_without_network(monkeypatch, tmp_path, capsys):
    pytest.importorskip("open_clip")
    from prompt_plugins.runs.backbone import cached_open_clip_file
    import open_clip

    cfg = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    if cached_open_clip_file(cfg) is not None:
        pytest.skip("ViT-B-32 openai weights are cached on this machine")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="not in the local cache and prompt-plugins never downloads"):
        load_backbone("open_clip:ViT-B-32:openai")
    assert time.perf_counter() - start < 10
    with pytest.raises(ConfigError, match="neither a file nor a pretrained tag"):
        load_backbone("open_clip:ViT-B-32:no-such-tag")
