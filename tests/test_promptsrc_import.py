"""The ``promptsrc`` importer on files written the way PromptSRC's trainer writes them (whole ``CustomCLIP`` state,
fp16 where released, GPA-aggregated, real Dassl SGD + scheduler pickles): the adapter's logits equal the spec's
reference forward within 1e-5, on the user's towers or (``keep_towers``) on the file's own aggregated towers;
detection, fixed words, and the error paths."""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("clip")

import prompt_plugins as pp  # noqa: E402
from prompt_plugins.cli import main  # noqa: E402
from prompt_plugins.errors import CheckpointError, ClassNameError, TowerMismatchWarning  # noqa: E402
from prompt_plugins.importers import convert, detect_format, get_importer  # noqa: E402
from prompt_plugins.methods.promptsrc import gaussian_weights  # noqa: E402

import backbone_files as bf  # noqa: E402
from tiny_models import images, make_openai  # noqa: E402

NAMES = ["red circle", "blue square", "green triangle"]
WEIGHTS = gaussian_weights(20, 15.0, 1.0).tolist()


def _run(tmp_path, *, module_prefix=False, gpa=True, n_ctx=4, ctx_init="a photo of a", seed=0):
    """A PromptSRC run folder ``run/VLPromptLearner/model.pth.tar-20`` on a pristine-fp16 tiny CLIP."""
    model = bf.fp16_pristine(make_openai())
    prompts = bf.random_prompts(model, n_ctx=n_ctx, seed=seed)
    state = bf.promptsrc_state(model, NAMES, prompts, ctx_init)
    if gpa:
        state = bf.gpa_as_released(state, WEIGHTS)
    if module_prefix:
        state = {"module." + k: v for k, v in state.items()}
    bf.save_dassl(tmp_path / "run" / "VLPromptLearner" / "model.pth.tar-20", state, 20)
    return model, {k.removeprefix("module."): v for k, v in state.items()}


def test_converted_adapter_equals_the_reference_forward(tmp_path):
    model, state = _run(tmp_path, gpa=False)
    assert detect_format(tmp_path / "run") == "promptsrc"
    out = convert(tmp_path / "run", tmp_path / "adapter", classnames=NAMES)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["method"] == "promptsrc" and config["prompt"]["depth"] == 3 and config["prompt"]["visual_depth"] == 3
    assert config["imported_from"]["towers"]["kept"] is False and config["imported_from"]["fixed_words"] == 0
    assert any("ZS_image_encoder" in d for d in config["imported_from"]["dropped"])
    x = images(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TowerMismatchWarning)  # pristine towers: the same as the user's
        prompted = pp.from_pretrained(model, out)
    assert prompted.method == "promptsrc" and prompted.template == "{}."
    reference = bf.reference_logits(model, NAMES, x, bf.file_prompts(state))
    torch.testing.assert_close(prompted(x), reference, atol=1e-5, rtol=1e-5)


def test_module_prefix_and_gpa_towers_keep_towers_for_exact_parity(tmp_path):
    """GPA perturbed the fp16 towers: on the user's CLIP a TowerMismatchWarning and other logits; with keep_towers
    the logits of the file's own towers (reference forward on a CLIP holding them) within 1e-5."""
    model, state = _run(tmp_path, module_prefix=True)
    file_towers = bf.tower_copy(model, state)
    x = images(3)
    reference = bf.reference_logits(file_towers, NAMES, x, bf.file_prompts(state))
    plain = convert(tmp_path / "run", tmp_path / "plain", classnames=NAMES)
    with pytest.warns(TowerMismatchWarning, match="differ .*keep_towers=True"):
        prompted = pp.from_pretrained(model, plain)
    assert not torch.allclose(prompted(x), reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(prompted(x), bf.reference_logits(model, NAMES, x, bf.file_prompts(state)),
                               atol=1e-5, rtol=1e-5)  # the prompts themselves are the file's
    prompted.eject()
    kept = convert(tmp_path / "run", tmp_path / "kept", classnames=NAMES, keep_towers=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", TowerMismatchWarning)
        exact = pp.from_pretrained(model, kept)
    torch.testing.assert_close(exact(x), reference, atol=1e-5, rtol=1e-5)
    exact.eject()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # eject restores the user's CLIP
    saved = load_file(str(kept / "adapter_model.safetensors"))
    # every tower tensor once, none from ZS_image_encoder (the token embedding is not saved by the release)
    towers = {k[len("tower."):] for k in saved if k.startswith("tower.")}
    assert towers == set(model.state_dict()) - {"token_embedding.weight"}


def test_the_zero_shot_tower_is_never_imported(tmp_path):
    """A file whose ZS_image_encoder differs from its image_encoder converts to the same adapter: the frozen
    zero-shot tower is the user's own CLIP, never a source of tower weights."""
    _, state = _run(tmp_path / "a")
    odd = {k: (v + 0.5 if "ZS_image_encoder" in k and v.is_floating_point() else v) for k, v in state.items()}
    bf.save_dassl(tmp_path / "b" / "run" / "VLPromptLearner" / "model.pth.tar-20", odd, 20)
    first = convert(tmp_path / "a" / "run", tmp_path / "a1", keep_towers=True)
    second = convert(tmp_path / "b" / "run", tmp_path / "b1", keep_towers=True)
    a, b = load_file(str(first / "adapter_model.safetensors")), load_file(str(second / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fixed_words_are_recovered_from_the_file(tmp_path):
    """N_CTX 2 with "a photo of a": "a photo" is learned, "of a" stays in token_suffix; the importer keeps the words
    and the loaded adapter's template is "of a {}." without the user saying so."""
    model, state = _run(tmp_path, n_ctx=2, gpa=False)
    out = convert(tmp_path / "run", tmp_path / "adapter", classnames=NAMES)
    assert json.loads((out / "adapter_config.json").read_text())["imported_from"]["fixed_words"] == 2
    prompted = pp.from_pretrained(model, out)
    assert prompted.template == "of a {}."
    x = images(2)
    torch.testing.assert_close(prompted(x), bf.reference_logits(model, NAMES, x, bf.file_prompts(state)),
                               atol=1e-5, rtol=1e-5)


def test_cli_convert_with_keep_towers(tmp_path, capsys):
    _run(tmp_path)
    names = tmp_path / "names.txt"
    names.write_text("\n".join(NAMES) + "\n")
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "a"), "--keep-towers", "--classnames",
                 str(names)]) == 0
    out = capsys.readouterr().out
    assert "(promptsrc)" in out and "kept with the adapter (tower.*)" in out
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "b")]) == 0
    assert "--keep-towers keeps them" in capsys.readouterr().out


def test_wrong_files_and_class_counts_are_refused(tmp_path, capsys):
    model, state = _run(tmp_path)
    with pytest.raises(ClassNameError, match="trained on 3 classes .* 2 class names"):
        convert(tmp_path / "run", tmp_path / "a", classnames=NAMES[:2])
    with pytest.raises(CheckpointError, match="not a KgCoOp .*reads as \\['promptsrc'\\]: pass --format promptsrc"):
        convert(tmp_path / "run" / "VLPromptLearner" / "model.pth.tar-20", tmp_path / "b", format="kgcoop")
    assert main(["convert", str(tmp_path / "run" / "VLPromptLearner" / "model.pth.tar-20"), str(tmp_path / "c"),
                 "--format", "kgcoop"]) == 2
    assert "pass --format promptsrc" in capsys.readouterr().err
    ivlp = {k: v for k, v in state.items() if "ZS_image_encoder" not in k}  # an IVLP file: no frozen tower
    bf.save_dassl(tmp_path / "ivlp" / "VLPromptLearner" / "model.pth.tar-5", ivlp, 5)
    assert not get_importer("promptsrc").detect(tmp_path / "ivlp")
    with pytest.raises(CheckpointError, match="not a PromptSRC checkpoint: it holds no prompt_learner.ZS_image"):
        convert(tmp_path / "ivlp", tmp_path / "d", format="promptsrc")
    assert not (tmp_path / "d").exists()
