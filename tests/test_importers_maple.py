"""Released MaPLe (``MultiModalPromptLearner``) and IVLP (``VLPromptLearner``) checkpoints, written as their trainers
write them (``released_files.py``), converted and checked against a reference forward written here from the spec
(backbones.md §0-§2): ``[SOS | ctx | suffix]`` with the file's buffers, deep replacement, visual tokens appended
after the positional embedding, EOT pooling, ``logit_scale.exp()`` times normalised features."""
import json
import warnings

import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins.errors import TowerMismatchWarning
from released_files import NAMES, CustomCLIP, clip_pair, ivlp_prompts, perturbed_towers, tokenized_prompts, \
    train_and_save
from tiny_models import images
from visual_reference import reference_image_features

pytest.importorskip("clip")


def reference_logits(state: dict, towers, x: torch.Tensor, kind: str, tokenized: torch.Tensor) -> torch.Tensor:
    """The released forward of a MaPLe / IVLP ``state`` (a saved ``state_dict``) on the CLIP ``towers`` (fp32)."""
    s = {k.removeprefix("module."): v.float() for k, v in state.items()}
    ctx, prefix, suffix = s["prompt_learner.ctx"], s["prompt_learner.token_prefix"], s["prompt_learner.token_suffix"]
    n, c = ctx.shape[0], prefix.shape[0]
    if kind == "maple":
        text_deep = [s[f"prompt_learner.compound_prompts_text.{i}"] for i in range(2)]
        couple = [(s[f"prompt_learner.compound_prompt_projections.{i}.weight"],
                   s[f"prompt_learner.compound_prompt_projections.{i}.bias"]) for i in range(2)]
        visual = F.linear(ctx, s["prompt_learner.proj.weight"], s["prompt_learner.proj.bias"])
        visual_deep = torch.stack([F.linear(t, w, b) for t, (w, b) in zip(text_deep, couple)])
    else:
        text_deep = [s[f"text_encoder.transformer.resblocks.{i}.VPT_shallow"] for i in (1, 2)]
        visual = s["image_encoder.VPT"]
        visual_deep = s["image_encoder.transformer.resblocks.1.VPT_shallow"][None]
    h = torch.cat([prefix, ctx.expand(c, -1, -1), suffix], dim=1) + towers.positional_embedding
    h = h.permute(1, 0, 2)  # LND, as the released text encoder runs
    for i, block in enumerate(towers.transformer.resblocks):
        if 1 <= i <= len(text_deep):
            h = torch.cat([h[:1], text_deep[i - 1][:, None].expand(-1, c, -1), h[1 + n:]], dim=0)
        h = block(h)
    h = towers.ln_final(h.permute(1, 0, 2))
    text = h[torch.arange(c), tokenized.argmax(dim=-1)] @ towers.text_projection
    image = reference_image_features("openai", towers, x, visual, visual_deep)
    return towers.logit_scale.exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()


def _maple_file(tmp_path, released, module_prefix=False, epoch=5):
    torch.manual_seed(1)
    custom = CustomCLIP(released, NAMES, n_ctx=2, ctx_init="a photo of a", maple_depth=3)
    path = train_and_save(custom, tmp_path / "run" / "MultiModalPromptLearner" / f"model.pth.tar-{epoch}",
                          epoch=epoch, module_prefix=module_prefix)
    return path, custom.state_dict()


def _ivlp_file(tmp_path, released):
    torch.manual_seed(2)
    custom = CustomCLIP(released, NAMES, n_ctx=2, ctx_init="a photo of a", maple_depth=None)
    ivlp_prompts(custom, n_text=2, text_depth=3, n_visual=3, visual_depth=2)
    path = train_and_save(custom, tmp_path / "run" / "VLPromptLearner" / "model.pth.tar-5")
    return path, custom.state_dict()


FILES = {"maple": _maple_file, "ivlp": _ivlp_file}


@pytest.mark.parametrize("kind, module_prefix", [("maple", False), ("maple", True), ("ivlp", False)])
def test_released_files_convert_to_the_released_logits(tmp_path, kind, module_prefix):
    user, released = clip_pair()
    path, state = FILES[kind](tmp_path, released, **({"module_prefix": True} if module_prefix else {}))
    assert state["prompt_learner.ctx"].dtype == torch.float16
    if kind == "maple":
        assert state["prompt_learner.proj.weight"].dtype == torch.float16
        assert state["prompt_learner.compound_prompts_text.0"].dtype == torch.float32
    assert pp.importers.detect_format(tmp_path / "run") == kind  # read without --allow-unsafe
    out = pp.importers.convert(tmp_path / "run", tmp_path / "adapter")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["method"] == kind and config["imported_from"]["format"] == kind
    assert config["imported_from"]["towers"]["kept"] is False and config["template"] == "{}."
    prompt = config["prompt"]
    if kind == "maple":
        assert (prompt["type"], prompt["n_ctx"], prompt["depth"]) == ("maple", 2, 3)
    else:
        assert (prompt["n_ctx"], prompt["depth"], prompt["n_visual_ctx"], prompt["visual_depth"]) == (2, 3, 3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TowerMismatchWarning)  # the same towers: no warning
        loaded = pp.from_pretrained(user, out, classnames=NAMES)
    assert loaded.template == "of a {}." and loaded.method == kind  # the fixed words came from token_suffix
    x = images(3)
    with torch.no_grad():
        ours = loaded(x)
        ref = reference_logits(state, user, x, kind, tokenized_prompts(2, "a photo of a", NAMES))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert (ours - loaded.logits(loaded.encode_image(x), loaded.encode_text())).abs().max() == 0


def test_keep_towers_gives_the_files_model(tmp_path):
    user, released = clip_pair()
    theirs = perturbed_towers(released)  # e.g. PromptSRC's aggregated towers: not the CLIP the user loads
    _, state = _maple_file(tmp_path, theirs)
    x, tokenized = images(3), tokenized_prompts(2, "a photo of a", NAMES)
    before = {k: v.clone() for k, v in user.state_dict().items()}

    pp.importers.convert(tmp_path / "run", tmp_path / "prompts_only")
    with pytest.warns(TowerMismatchWarning, match=r"tower tensors saved with these prompts differ.*keep_towers=True"):
        plain = pp.from_pretrained(user, tmp_path / "prompts_only", classnames=NAMES)
    with torch.no_grad():
        on_users = reference_logits(state, user, x, "maple", tokenized)
        torch.testing.assert_close(plain(x), on_users, atol=1e-5, rtol=0)
    plain.eject()

    pp.importers.convert(tmp_path / "run", tmp_path / "kept", keep_towers=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TowerMismatchWarning)
        kept = pp.from_pretrained(user, tmp_path / "kept", classnames=NAMES)
    with torch.no_grad():
        ours = kept(x)
        ref = reference_logits(state, theirs.float(), x, "maple", tokenized)
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
        assert not torch.allclose(ours, on_users, atol=1e-3)  # the user's model runs the file's towers while attached
    kept.eject()
    assert all(torch.equal(before[k], v) for k, v in user.state_dict().items())


def test_class_names_sharing_leading_words_are_told_from_the_fixed_words(tmp_path):
    """Every class starting with "red": the rows all classes share are "of a red"; the class list says which are
    fixed words. With 4 learned tokens nothing is fixed."""
    user, released = clip_pair()
    names = ["red circle", "red square", "red triangle"]
    custom = CustomCLIP(released, names, n_ctx=2, ctx_init="a photo of a", maple_depth=2)
    train_and_save(custom, tmp_path / "a" / "MultiModalPromptLearner" / "model.pth.tar-5")
    pp.importers.convert(tmp_path / "a", tmp_path / "out", classnames=names)
    assert pp.from_pretrained(user, tmp_path / "out").template == "of a {}."
    with pytest.raises(pp.ClassNameError, match=r"share 4 leading token\(s\) but .* only 3.*not the class names"):
        pp.importers.convert(tmp_path / "a", tmp_path / "bad", classnames=["red big blue dark x", "red big blue dark y",
                                                                           "red big blue dark z"])
    whole = CustomCLIP(released, NAMES, n_ctx=4, ctx_init="a photo of a", maple_depth=2)
    train_and_save(whole, tmp_path / "b" / "MultiModalPromptLearner" / "model.pth.tar-5")
    pp.importers.convert(tmp_path / "b", tmp_path / "out4")
    assert pp.from_pretrained(user, tmp_path / "out4", classnames=NAMES).template == "{}."


def test_epoch_and_run_directory(tmp_path):
    _, released = clip_pair()
    _maple_file(tmp_path, released, epoch=2)
    _maple_file(tmp_path, released, epoch=5)
    out = pp.importers.get_importer("maple").convert(tmp_path / "run", tmp_path / "a", epoch=2)
    assert json.loads((out / "adapter_config.json").read_text())["imported_from"]["source"].endswith("tar-2")
    out = pp.importers.convert(tmp_path / "run", tmp_path / "b")
    assert json.loads((out / "adapter_config.json").read_text())["imported_from"]["source"].endswith("tar-5")


def _promptsrc_like(tmp_path, released):
    path, state = _ivlp_file(tmp_path, released)
    state = {**state, "prompt_learner.ZS_image_encoder.conv1.weight": state["image_encoder.conv1.weight"]}
    return path, state


def test_a_file_of_another_trainer_is_refused_naming_its_format(tmp_path):
    from dassl_files import dassl_optim, save_checkpoint

    _, released = clip_pair()
    maple, _ = _maple_file(tmp_path / "m", released)
    ivlp, ivlp_state = _ivlp_file(tmp_path / "i", released)
    with pytest.raises(pp.CheckpointError, match=r"not a IVLP .* it is a MaPLe .*--format maple"):
        pp.importers.convert(maple, tmp_path / "x", format="ivlp")
    with pytest.raises(pp.CheckpointError, match=r"not a MaPLe .* it is a IVLP .*--format ivlp"):
        pp.importers.convert(ivlp, tmp_path / "x", format="maple")
    opt, sched = dassl_optim([torch.nn.Parameter(torch.zeros(1))])
    src = {**ivlp_state, "prompt_learner.ZS_image_encoder.conv1.weight": ivlp_state["image_encoder.conv1.weight"]}
    kd = {k: v for k, v in ivlp_state.items() if k != "prompt_learner.ctx"}
    kd["VPT_image_trans.conv1.weight"] = torch.zeros(4, 4, 1, 1)
    for name, state, fmt in (("src", src, "promptsrc"), ("kd", kd, "promptkd")):
        file = save_checkpoint(tmp_path / name / "model.pth.tar-5", state, opt, sched, 5)
        assert not pp.importers.get_importer("ivlp").detect(file)
        with pytest.raises(pp.CheckpointError, match=rf"--format {fmt}"):
            pp.importers.convert(file, tmp_path / "x", format="ivlp")
    with pytest.raises(pp.ClassNameError, match="trained on 3 classes .* 2 class names"):
        pp.importers.convert(maple, tmp_path / "x", classnames=NAMES[:2])
    with pytest.raises(pp.CheckpointError, match="neither a checkpoint file nor a run directory"):
        pp.importers.convert(tmp_path / "missing", tmp_path / "x", format="maple")
    assert not (tmp_path / "x").exists()


def test_cli_convert_keep_towers(tmp_path, capsys):
    from prompt_plugins.cli import main

    _, released = clip_pair()
    _maple_file(tmp_path, released)
    (tmp_path / "classes.txt").write_text("\n".join(NAMES) + "\n")
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "out"), "--keep-towers",
                 "--classnames", str(tmp_path / "classes.txt")]) == 0
    printed = capsys.readouterr().out
    assert "(maple)" in printed and "kept with the adapter" in printed
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config["imported_from"]["towers"]["kept"] and config["classnames"] == NAMES
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "o2"), "--format", "ivlp"]) == 2
    assert "--format maple" in capsys.readouterr().err
