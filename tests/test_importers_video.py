"""ViFi-CLIP and GA2-CLIP importers and ``prompt-plugins convert`` on files written here in the released
layouts (spec ga2clip.md §4): module. prefixes, pickled yacs config, class buffers, per-layer VPT keys."""
import json
import os
import sys
import types

import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins.cli import main
from prompt_plugins.errors import CheckpointError, UnsafeCheckpointError
from prompt_plugins.importers import detect_format, safe_load
from prompt_plugins.importers.reader import read_tensors_only
from tiny_models import images, make_model

W, N_CTX, N_CLS, LAYERS = 64, 4, 3, 3  # tiny OpenAI CLIP: width 64, 3 layers
CLASSES = ["archery", "bowling", "juggling balls"]


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _fake_yacs(monkeypatch):
    """Register a module ``yacs.config`` with a CfgNode(dict) class, as in ViFi-CLIP's training code."""
    class CfgNode(dict):
        def __init__(self, init=None):
            super().__init__(init or {})
            self.__dict__["__immutable__"] = False

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    config_mod, pkg = types.ModuleType("yacs.config"), types.ModuleType("yacs")
    config_mod.CfgNode, pkg.config = CfgNode, config_mod
    monkeypatch.setitem(sys.modules, "yacs", pkg)
    monkeypatch.setitem(sys.modules, "yacs.config", config_mod)
    return CfgNode


def ivlp_keys(prefix_ctx: str, seed: int = 0) -> dict:
    g = _g(seed)
    state = {prefix_ctx: torch.randn(N_CTX, W, generator=g), "image_encoder.VPT": torch.randn(N_CTX, W, generator=g)}
    for i in range(1, LAYERS):
        state[f"text_encoder.transformer.resblocks.{i}.VPT_shallow"] = torch.randn(N_CTX, W, generator=g)
        state[f"image_encoder.transformer.resblocks.{i}.VPT_shallow"] = torch.randn(N_CTX, W, generator=g)
    for i in range(LAYERS):  # a few backbone tensors, as in the released files
        state[f"image_encoder.transformer.resblocks.{i}.attn.in_proj_weight"] = torch.zeros(3 * W, W)
        state[f"text_encoder.transformer.resblocks.{i}.attn.in_proj_weight"] = torch.zeros(3 * W, W)
    state["text_encoder.positional_embedding"] = torch.zeros(77, W)
    state["text_encoder.text_projection"] = torch.zeros(W, 64)
    state["logit_scale"] = torch.tensor(4.6052)
    return state


@pytest.fixture
def vifi_file(tmp_path, monkeypatch):
    cfg_node = _fake_yacs(monkeypatch)
    model = ivlp_keys("prompt_learner.ctx")
    model["prompt_learner.token_prefix"] = torch.zeros(N_CLS, 1, W)
    model["prompt_learner.token_suffix"] = torch.zeros(N_CLS, 76 - N_CTX, W)
    model["prompt_learner.meta_net.weight"] = torch.zeros(2, 2)  # a prompt key we do not know: reported
    config = cfg_node({"TRAINER": cfg_node({"ViFi_CLIP": cfg_node({"N_CTX_TEXT": N_CTX, "PROMPT_DEPTH_TEXT": LAYERS})}),
                       "DATA": cfg_node({"NUM_FRAMES": 8})})
    ckpt = {"model": {f"module.{k}": v for k, v in model.items()}, "optimizer": {"state": {}, "param_groups": []},
            "lr_scheduler": {}, "max_accuracy": 77.1, "epoch": 10, "config": config}
    path = tmp_path / "ckpt_epoch_10.pth"
    torch.save(ckpt, path)
    monkeypatch.delitem(sys.modules, "yacs.config")  # the reader must not need yacs
    monkeypatch.delitem(sys.modules, "yacs")
    return path, model


@pytest.fixture
def ga2_files(tmp_path):
    state = ivlp_keys("prompt_learner.ctx_VPT", seed=1)
    g = _g(2)
    state["prompt_learner.proj_b2n_VPT.0.weight"] = torch.randn(W, 2 * W, generator=g) * 0.1
    state["prompt_learner.proj_b2n_VPT.0.bias"] = torch.randn(W, generator=g) * 0.1
    state["prompt_learner.token_prefix"] = torch.zeros(N_CLS, 1, W)
    path = tmp_path / "model_best.pt"
    torch.save({"epoch": 11, "model_state_dict": state, "fusion_model_state_dict": {},
                "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 0.04, "params": [0, 1]}]}}, path)
    hard = torch.randn(N_CTX, W, generator=g)
    hard_path = tmp_path / "k400_base_pre_model_best.pt"
    torch.save({"epoch": 11, "model_state_dict": {"prompt_learner.ctx_VPT": hard}}, hard_path)
    return path, hard_path, state, hard


def test_vifi_yacs_pickle_refused_by_safe_load_but_read_tensors_only(vifi_file):
    path, model = vifi_file
    with pytest.raises(UnsafeCheckpointError, match="allow_unsafe"):
        safe_load(path)
    obj = read_tensors_only(path)  # no yacs installed: the config arrives as plain dicts, no code ran
    assert obj["config"]["TRAINER"]["ViFi_CLIP"]["N_CTX_TEXT"] == N_CTX
    torch.testing.assert_close(obj["model"]["module.prompt_learner.ctx"], model["prompt_learner.ctx"])
    assert detect_format(path) == "vificlip"


def test_vifi_convert_and_load(vifi_file, tmp_path, capsys):
    path, model = vifi_file
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(CLASSES) + "\n")
    out = tmp_path / "adapter"
    with pytest.warns(UserWarning, match="backbone tensors were not imported"):
        assert main(["convert", str(path), str(out), "--classnames", str(names)]) == 0
    printed = capsys.readouterr().out
    assert "(vificlip)" in printed and "prompt_learner.token_prefix" in printed
    report = json.loads((out / "adapter_config.json").read_text())["imported_from"]
    assert report["dropped"] == ["prompt_learner.token_prefix", "prompt_learner.token_suffix"]
    assert report["unexpected"] == ["prompt_learner.meta_net.weight"]
    prompted = pp.from_pretrained(make_model("openai"), out)
    assert prompted.classnames == CLASSES and prompted.method == "coop"
    p = prompted.prompt
    torch.testing.assert_close(p.ctx, model["prompt_learner.ctx"], atol=0, rtol=0)
    torch.testing.assert_close(p.visual, model["image_encoder.VPT"], atol=0, rtol=0)
    for i in range(1, LAYERS):
        torch.testing.assert_close(p.text_deep[i - 1], model[f"text_encoder.transformer.resblocks.{i}.VPT_shallow"])
        torch.testing.assert_close(p.visual_deep[i - 1], model[f"image_encoder.transformer.resblocks.{i}.VPT_shallow"])
    assert prompted(images(2, frames=4)).shape == (2, N_CLS)
    # a backbone of another depth is refused by the stored fingerprint
    with pytest.raises(CheckpointError, match="text_layers: checkpoint 3 vs model 2"):
        pp.from_pretrained(make_model("openai", layers=2), out)


def test_ga2_convert_with_hard_prompt(ga2_files, tmp_path):
    path, hard_path, state, hard = ga2_files
    assert detect_format(path) == "ga2"
    out = tmp_path / "ga2_adapter"
    with pytest.warns(UserWarning):
        assert main(["convert", str(path), str(out), "--hard-prompt", str(hard_path)]) == 0
    prompted = pp.from_pretrained(make_model("open_clip"), out, classnames=CLASSES)
    prompted.eval()
    c = prompted.prompt
    assert prompted.method == "ga2"
    torch.testing.assert_close(c.hard, hard, atol=0, rtol=0)
    torch.testing.assert_close(c.soft.ctx, state["prompt_learner.ctx_VPT"], atol=0, rtol=0)
    w, b = state["prompt_learner.proj_b2n_VPT.0.weight"], state["prompt_learner.proj_b2n_VPT.0.bias"]
    expected = F.relu(torch.cat([hard, state["prompt_learner.ctx_VPT"]], -1) @ w.t() + b)
    torch.testing.assert_close(prompted.prompt().text, expected, atol=1e-6, rtol=0)
    assert prompted(images(1, frames=2)).shape == (1, N_CLS)


def test_ga2_without_hard_prompt_or_with_wrong_one_fails_clearly(ga2_files, tmp_path, capsys):
    path, _, _, _ = ga2_files
    assert main(["convert", str(path), str(tmp_path / "x"), "--format", "ga2"]) == 2
    assert "do not contain the hard prompt: pass hard_prompt (CLI: --hard-prompt" in capsys.readouterr().err
    bad = tmp_path / "bad_hard.pt"
    torch.save({"model_state_dict": {"prompt_learner.ctx_VPT": torch.zeros(N_CTX + 1, W)}}, bad)
    assert main(["convert", str(path), str(tmp_path / "y"), "--hard-prompt", str(bad)]) == 2
    assert "hard prompt has shape (5, 64)" in capsys.readouterr().err
    assert main(["convert", str(path), str(tmp_path / "z"), "--hard-prompt", str(bad), "--option", "n_ctx=3"]) == 2
    assert "unknown option(s) ['n_ctx'] for format 'ga2'" in capsys.readouterr().err


class Opaque:  # any class outside the weights-only allowlist
    def __init__(self, note="trained on 8 GPUs"):
        self.note = note


class CallsOpaque(Opaque):  # unpickling it calls a constructor of the file's choice: code
    def __reduce__(self):
        return (Opaque, (self.note,))


def test_pickled_objects_of_unknown_classes_are_read_as_inert_data(tmp_path):
    state = {f"module.{k}": v for k, v in ivlp_keys("prompt_learner.ctx").items()}
    path = tmp_path / "best.pth"
    torch.save({"model": state, "config": Opaque(), "epoch": 1}, path)
    config = read_tensors_only(path)["config"]  # Opaque is never imported nor called
    assert config.pickled_class.endswith("Opaque") and config.note == "trained on 8 GPUs"
    assert detect_format(path) == "vificlip"


def test_unsafe_pickle_is_refused_unless_allowed(tmp_path, capsys):
    state = {f"module.{k}": v for k, v in ivlp_keys("prompt_learner.ctx").items()}
    path = tmp_path / "best.pth"
    torch.save({"model": state, "config": CallsOpaque(), "epoch": 1}, path)
    code = main(["convert", str(path), str(tmp_path / "out"), "--format", "vificlip"])
    err = capsys.readouterr().err
    assert code == 2 and "needs arbitrary code" in err and "--allow-unsafe" in err and "Opaque(...)" in err
    assert not (tmp_path / "out").exists()
    with pytest.warns(UserWarning, match="weights_only=False"):
        assert main(["convert", str(path), str(tmp_path / "out"), "--format", "vificlip", "--allow-unsafe"]) == 0
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_layer_gaps_and_unknown_files(tmp_path, capsys):
    state = ivlp_keys("prompt_learner.ctx")
    del state["text_encoder.transformer.resblocks.1.VPT_shallow"]
    path = tmp_path / "gap.pth"
    torch.save({"model": state}, path)
    assert main(["convert", str(path), str(tmp_path / "o"), "--format", "vificlip"]) == 2
    assert "exist for layers [2]; expected 1..1" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    assert main(["convert", str(other), str(tmp_path / "p")]) == 2
    assert "no known format matched; pass --format" in capsys.readouterr().err
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert main(["convert", str(empty), str(tmp_path / "q"), "--format", "vificlip"]) == 2
    assert "is empty (0 bytes)" in capsys.readouterr().err
