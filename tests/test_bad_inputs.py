"""Bad inputs: each raises a specific prompt-plugins exception whose message names the problem.

One table, one row per distinct bad input (checkpoints, configs, class lists, shapes, losses, options).
"""
import json
import pickle

import pytest
import torch

import prompt_plugins as pp
from prompt_plugins.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from prompt_plugins.errors import (
    CheckpointError, ClassNameError, ConfigError, PromptTooLongError, ShapeError, UnsafeCheckpointError,
    UnsupportedModelError,
)
from prompt_plugins.importers import safe_load
from prompt_plugins import AttributeAnchorLoss, HardNegativeOptimizer, symmetric_info_nce
from tiny_models import images, make_model

NAMES = ["red circle", "blue square", "green triangle"]


@pytest.fixture(scope="module")
def model():
    return make_model("openai")


@pytest.fixture
def saved(model, tmp_path):
    prompted = pp.wrap(model, NAMES, n_ctx=2)
    pp.save_pretrained(prompted, tmp_path)
    prompted.eject()
    return tmp_path


def _edit_config(directory, **changes):
    path = directory / CONFIG_NAME
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


class Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


# ---------------------------------------------------------------------------- checkpoints
def test_truncated_safetensors(model, saved):
    data = (saved / WEIGHTS_NAME).read_bytes()
    (saved / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    _edit_config(saved, weights_sha256=None)
    with pytest.raises(CheckpointError, match="not a valid safetensors file .* truncated or corrupt"):
        pp.from_pretrained(model, saved)


def test_corrupt_safetensors(model, saved):
    (saved / WEIGHTS_NAME).write_bytes(b"\x00" * 64)
    _edit_config(saved, weights_sha256=None)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        pp.from_pretrained(model, saved)


def test_empty_safetensors(model, saved):
    (saved / WEIGHTS_NAME).write_bytes(b"")
    _edit_config(saved, weights_sha256=None)
    with pytest.raises(CheckpointError, match=r"is empty \(0 bytes\)"):
        pp.from_pretrained(model, saved)


def test_weights_from_another_save(model, saved):
    (saved / WEIGHTS_NAME).write_bytes((saved / WEIGHTS_NAME).read_bytes()[:-1] + b" ")
    with pytest.raises(CheckpointError, match="does not match the SHA-256"):
        pp.from_pretrained(model, saved)


def test_missing_weights_file(model, saved):
    (saved / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match="adapter_model.safetensors is missing"):
        pp.from_pretrained(model, saved)


def test_missing_directory(model, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        pp.from_pretrained(model, tmp_path / "nope")


def test_config_not_json(model, saved):
    (saved / CONFIG_NAME).write_text("{not json")
    with pytest.raises(CheckpointError, match="is not valid JSON"):
        pp.from_pretrained(model, saved)


def test_newer_format_version(model, saved):
    _edit_config(saved, format_version=99)
    with pytest.raises(CheckpointError, match="format_version 99, newer than .* upgrade prompt-plugins"):
        pp.from_pretrained(model, saved)


def test_unknown_method(model, saved):
    _edit_config(saved, method="lora")
    with pytest.raises(ConfigError, match="unknown method 'lora'; known methods"):
        pp.from_pretrained(model, saved)


def test_unknown_prompt_type(model, saved):
    cfg = json.loads((saved / CONFIG_NAME).read_text())
    _edit_config(saved, prompt={**cfg["prompt"], "type": "prefix"})
    with pytest.raises(ConfigError, match="unknown prompt type 'prefix'"):
        pp.from_pretrained(model, saved)


def test_unknown_config_keys_warn_and_are_ignored(model, saved):
    _edit_config(saved, shiny_new_field=1)
    with pytest.warns(UserWarning, match=r"ignoring unknown keys \['shiny_new_field'\]"):
        loaded = pp.from_pretrained(model, saved)
    assert loaded.classnames == NAMES


def test_wrong_tensor_shape(model, saved):
    from safetensors.torch import load_file, save_file

    state = load_file(saved / WEIGHTS_NAME)
    state["prompt.ctx"] = torch.zeros(5, 64)
    save_file(state, saved / WEIGHTS_NAME)
    _edit_config(saved, weights_sha256=None)
    with pytest.raises(CheckpointError, match=r"'prompt.ctx' has shape \(5, 64\) in the checkpoint but \(2, 64\)"):
        pp.from_pretrained(model, saved)


def test_wrong_tensor_dtype(model, saved):
    from safetensors.torch import save_file

    save_file({"prompt.ctx": torch.zeros(2, 64, dtype=torch.int32)}, saved / WEIGHTS_NAME)
    _edit_config(saved, weights_sha256=None)
    with pytest.raises(CheckpointError, match="has dtype torch.int32, expected a floating-point tensor"):
        pp.from_pretrained(model, saved)


def test_nan_in_checkpoint(model, saved):
    from safetensors.torch import save_file

    save_file({"prompt.ctx": torch.full((2, 64), float("nan"))}, saved / WEIGHTS_NAME)
    _edit_config(saved, weights_sha256=None)
    with pytest.raises(CheckpointError, match="contains NaN or inf"):
        pp.from_pretrained(model, saved)


def test_missing_and_unexpected_keys(model, saved):
    from safetensors.torch import save_file

    save_file({"prompt.context": torch.zeros(2, 64)}, saved / WEIGHTS_NAME)
    _edit_config(saved, weights_sha256=None)
    with pytest.raises(CheckpointError, match=r"missing keys \['prompt.ctx'\], unexpected keys \['prompt.context'\]"):
        pp.from_pretrained(model, saved)


def test_checkpoint_from_another_backbone(saved):
    with pytest.raises(CheckpointError, match="text_width: checkpoint 64 vs model 128"):
        pp.from_pretrained(make_model("hf", width=128), saved)


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "model.pth.tar-5"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"ctx": torch.zeros(2, 4)}, "evil": Evil()}, f)
    with pytest.raises(UnsafeCheckpointError, match="needs arbitrary code to load.*allow_unsafe=True"):
        safe_load(path)


def test_save_of_a_non_adapter(tmp_path):
    with pytest.raises(CheckpointError, match="is not a prompt-plugins adapter"):
        pp.save_pretrained(torch.nn.Linear(2, 2), tmp_path)


# ---------------------------------------------------------------------------- classes and options
@pytest.mark.parametrize("names, error, match", [
    ([], ClassNameError, "class list is empty"),
    (["cat", "cat"], ClassNameError, "duplicate class name 'cat'"),
    (["cat", ""], ClassNameError, "class name #1 is blank"),
    (["cat", 3], ClassNameError, "class name #1 is int"),
    (["word " * 80], PromptTooLongError, "more than the context length 77"),
])
def test_bad_class_lists(model, names, error, match):
    with pytest.raises(error, match=match):
        pp.wrap(model, names, n_ctx=2)


def test_base_classes_not_in_class_list(model):
    with pytest.raises(ClassNameError, match="base class 'purple' is not in the class list"):
        pp.wrap(model, NAMES, method="dpc", base_classes=["purple"], n_ctx=2)


def test_unknown_class_name_in_selection(model):
    with pytest.raises(ClassNameError, match=r"unknown class names \['purple'\]"):
        pp.wrap(model, NAMES, n_ctx=2).encode_text(["purple"])


def test_class_index_out_of_range(model):
    with pytest.raises(ClassNameError, match="class index out of range for 3 classes"):
        pp.wrap(model, NAMES, n_ctx=2).encode_text([5])


def test_unknown_wrap_option(model):
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['n_tokens'\]"):
        pp.wrap(model, NAMES, n_tokens=4)


def test_weight_base_out_of_range(model):
    with pytest.raises(ConfigError, match="weight_base"):
        pp.wrap(model, NAMES, method="dpc", base_classes=NAMES[:1], weight_base=1.5, n_ctx=2)


def test_unsupported_model_object():
    with pytest.raises(UnsupportedModelError, match="got str"):
        pp.wrap("ViT-B/16", NAMES)


# ---------------------------------------------------------------------------- images and videos
@pytest.mark.parametrize("x, match", [
    (torch.zeros(2, 4, 32, 32), "expected 3 colour channels at dim -3, got 4"),
    (torch.zeros(2, 3, 16, 16), "expected 32x32 images for this model, got 16x16"),
    (torch.zeros(2, 0, 3, 32, 32), "T=0 frames"),
    (torch.zeros(0, 3, 32, 32), "empty batch"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "must be floating point"),
    (torch.zeros(32, 32), r"expected images \(B, 3, H, W\) or videos"),
])
def test_bad_images(model, x, match):
    with pytest.raises(ShapeError, match=match):
        pp.wrap(model, NAMES, n_ctx=2)(x)


def test_images_not_a_tensor(model):
    with pytest.raises(ShapeError, match="must be a torch.Tensor, got list"):
        pp.wrap(model, NAMES, n_ctx=2)([[0.0]])


# ---------------------------------------------------------------------------- losses
def test_nan_features_into_info_nce():
    feats = torch.randn(3, 8)
    feats[1, 2] = float("nan")
    with pytest.raises(ShapeError, match="image_feats contains 1 NaN/inf values"):
        symmetric_info_nce(feats, torch.randn(3, 8), 100.0)


def test_inf_features_into_anchor_loss():
    anchor = torch.randn(2, 8)
    anchor[0, 0] = float("inf")
    loss = AttributeAnchorLoss(bank=["blurry", "dark"])
    with pytest.raises(ShapeError, match="anchor_features contains 1 NaN/inf values"):
        loss(anchor, torch.randn(2, 8), frozen_anchor_features=torch.randn(2, 8))


def test_info_nce_shape_mismatch():
    with pytest.raises(ShapeError, match="must both be"):
        symmetric_info_nce(torch.randn(3, 8), torch.randn(4, 8), 1.0)


def test_top_k_larger_than_number_of_classes(model):
    dpc = pp.wrap(model, NAMES, method="dpc", base_classes=NAMES, n_ctx=2)
    objective = HardNegativeOptimizer(dpc, [(images(1)[0], c) for c in range(3)], top_k=5)
    with pytest.raises(ConfigError, match="top_k=5 is larger than the 2 wrong classes available"):
        objective(images(2), torch.tensor([0, 1]))


def test_top_k_below_one(model):
    dpc = pp.wrap(model, NAMES, method="dpc", base_classes=NAMES, n_ctx=2)
    with pytest.raises(ConfigError, match="top_k=0 is out of range"):
        HardNegativeOptimizer(dpc, class_index={0: [0]}, top_k=0)


def test_empty_anchor_iterable(model):
    prompted = pp.wrap(model, NAMES, n_ctx=2, n_visual_ctx=2)
    loss = AttributeAnchorLoss(anchors=[])
    with pytest.raises((ShapeError, ConfigError), match="empty"):
        loss.from_model(prompted)


def test_unknown_anchor_mode():
    with pytest.raises(ConfigError, match="mode='kl': choose from"):
        AttributeAnchorLoss(mode="kl")


def test_empty_attribute_bank():
    with pytest.raises(ConfigError, match="bank must be a non-empty list"):
        AttributeAnchorLoss(bank=[])


def test_ga2_without_hard_prompt(model):
    with pytest.raises(ConfigError, match="needs hard_prompt"):
        pp.wrap(model, NAMES, method="ga2")


def test_videos_with_temporal_prompts_of_other_length(model):
    prompted = pp.wrap(model, NAMES, n_ctx=2, n_visual_ctx=2, temporal_frames=4)
    with pytest.raises(ShapeError, match="temporal prompts are for T=4 frames, got videos of T=3"):
        prompted(images(1, frames=3), layout="BTCHW")
