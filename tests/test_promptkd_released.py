"""Released PromptKD student files and PromptKD+DPC runs (spec backbones.md §5.6, §7.1; dpc.md §6), written as the
trainers write them (real Dassl pickles, fp16 convs and towers, ``module.`` prefixes), convert to adapters whose
logits equal a reference forward written from the spec, with a student and a teacher CLIP of different widths."""
from __future__ import annotations

import copy

import pytest
import torch

import prompt_plugins as pp
from prompt_plugins.cli import main
from prompt_plugins.errors import CheckpointError, ClassNameError, ConfigError
from prompt_plugins.importers import convert, detect_format
from promptkd_files import (NAMES, dpc_state, half_convs, make_clip, projector, ref_student_logits, ref_text, save_run,
                            student_state)
from tiny_models import images

BASE, NEW = NAMES[:4], NAMES[4:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A PromptKD student run, a PromptKD+DPC run trained from it, the teacher's prompts and the two CLIPs."""
    root = tmp_path_factory.mktemp("promptkd_runs")
    student_clip, teacher_clip = make_clip(64, 40, seed=0), make_clip(96, 48, seed=7)
    g = torch.Generator().manual_seed(11)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.5  # noqa: E731
    t_ctx, t_deep = r(4, 96), r(2, 4, 96)  # the teacher's (PromptSRC-trained) text prompts
    proj = projector(40, 48, seed=3, half=False)
    moved = copy.deepcopy(proj).train()
    with torch.no_grad():  # the P' route trained on: other weights and re-estimated statistics
        moved(torch.randn(6, 40, 1, 1) * 3)
        moved[1].weight.add_(r(48) * 0.1)
        moved[3].weight.add_(r(48, 48, 1, 1) * 0.05)
    kd = student_state(student_clip, r(4, 64), r(2, 4, 64), half_convs(proj))
    save_run(root / "promptkd", kd)
    run = dpc_state(student_clip, kd["image_encoder.VPT"] + r(4, 64) * 0.2, r(2, 4, 64), half_convs(moved), teacher_clip,
                    t_ctx + r(4, 96) * 0.2, r(2, 4, 96), n_base=len(BASE))
    save_run(root / "dpc", run)
    return dict(root=root, student=student_clip, teacher=teacher_clip, t_ctx=t_ctx, t_deep=t_deep, kd=kd, run=run)


def teacher_of(runs, names=NAMES):
    t = pp.wrap(copy.deepcopy(runs["teacher"]), names, method="coop", n_ctx=4, depth=3, n_visual_ctx=2).eval()
    with torch.no_grad():
        t.prompt.ctx.copy_(runs["t_ctx"])
        t.prompt.text_deep.copy_(runs["t_deep"])
    return t


def reference(runs, state, x, names, ctx=None, deep=None, stats=None):
    text = ref_text(runs["teacher"], names, runs["t_ctx"] if ctx is None else ctx, runs["t_deep"] if deep is None
                    else deep)
    return ref_student_logits(runs["student"], state, x, text, stats)


def test_student_file_converts_to_the_released_logits(runs, tmp_path):
    src = runs["root"] / "promptkd"
    assert detect_format(src) == "promptkd"
    out = convert(src, tmp_path / "kd", classnames=NAMES)
    with pytest.raises(ConfigError, match="stores no teacher text features"):
        pp.from_pretrained(copy.deepcopy(runs["student"]), out)
    x = images(3, seed=5)
    s = pp.from_pretrained(copy.deepcopy(runs["student"]), out, teacher=teacher_of(runs))
    with torch.no_grad():
        logits = s(x)
        torch.testing.assert_close(logits, reference(runs, runs["kd"], x, NAMES), atol=1e-5, rtol=0)
    pp.save_pretrained(s, tmp_path / "complete")  # the teacher features are stored from now on
    again = pp.from_pretrained(copy.deepcopy(runs["student"]), tmp_path / "complete")
    with torch.no_grad():
        torch.testing.assert_close(again(x), logits, atol=1e-6, rtol=0)
    feats = teacher_of(runs).encode_text(NAMES)
    with_bank = pp.from_pretrained(copy.deepcopy(runs["student"]), out, teacher_features=feats, teacher_classnames=NAMES)
    with torch.no_grad():
        torch.testing.assert_close(with_bank(x), logits, atol=1e-6, rtol=0)


def test_module_prefix_last_epoch_and_own_towers_through_the_cli(runs, tmp_path, capsys):
    run = tmp_path / "ddp"
    state = {"module." + k: v for k, v in runs["kd"].items()}
    save_run(run, state, epoch=20, best=False)
    (tmp_path / "names.txt").write_text("\n".join(NAMES) + "\n")
    assert main(["convert", str(run), str(tmp_path / "out"), "--format", "promptkd", "--classnames",
                 str(tmp_path / "names.txt"), "--option", "keep_towers=true"]) == 0
    assert "(promptkd)" in capsys.readouterr().out
    model = make_clip(64, 40, seed=1)  # another CLIP: the file's own towers make it the released model
    s = pp.from_pretrained(model, tmp_path / "out", teacher=teacher_of(runs))
    x = images(2, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(s(x), reference(runs, runs["kd"], x, NAMES), atol=1e-5, rtol=0)
    s.eject()
    assert torch.equal(model.visual.proj, make_clip(64, 40, seed=1).visual.proj)  # restored on eject


def test_promptkd_dpc_run_converts_to_the_released_base_and_new_logits(runs, tmp_path):
    src, run = runs["root"] / "dpc", runs["run"]
    assert detect_format(src) == "promptkd_dpc"
    out = convert(src, tmp_path / "dpc", backbone=runs["root"] / "promptkd", classnames=NAMES)
    with pytest.raises(ConfigError, match="imported PromptKD\\+DPC run.*teacher="):
        pp.from_pretrained(copy.deepcopy(runs["student"]), out)
    w = pp.from_pretrained(copy.deepcopy(runs["student"]), out, teacher=teacher_of(runs)).eval()
    assert w.base_classnames == BASE
    x = images(3, seed=5)
    deep = torch.stack([run[f"prompt_learner.text_encoder.transformer.resblocks.{i}.VPT_shallow"].float()
                        for i in (1, 2)])
    base = reference(runs, run, x, BASE, ctx=run["prompt_learner.ctx"].float(), deep=deep)  # P' with its own stats
    new = reference(runs, runs["kd"], x, NEW)  # the PromptKD backbone and its teacher's features
    with torch.no_grad():
        logits = w(x)
        torch.testing.assert_close(logits[:, :4], base, atol=1e-5, rtol=0)
        torch.testing.assert_close(logits[:, 4:], new, atol=1e-5, rtol=0)
    pp.save_pretrained(w, tmp_path / "plain")
    w.eject()
    loaded = pp.from_pretrained(copy.deepcopy(runs["student"]), tmp_path / "plain").eval()  # a dpc adapter
    assert loaded.adapter_config().method == "dpc"
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), logits, atol=1e-6, rtol=0)


def test_converse_ctx_mode_decodes_the_text_context(runs, tmp_path):
    out = convert(runs["root"] / "dpc", tmp_path / "c", "promptkd_dpc", backbone=runs["root"] / "promptkd",
                  classnames=NAMES, ctx_mode="converse", weight_base=0.5)
    w = pp.from_pretrained(copy.deepcopy(runs["student"]), out, teacher=teacher_of(runs)).eval()
    run, x = runs["run"], images(2, seed=8)
    decoded = runs["t_ctx"] + (run["prompt_learner.ctx"].float() - runs["t_ctx"]) / 0.5
    deep = torch.stack([run[f"prompt_learner.text_encoder.transformer.resblocks.{i}.VPT_shallow"].float()
                        for i in (1, 2)])
    with torch.no_grad():
        torch.testing.assert_close(w(x, classes=BASE), reference(runs, run, x, BASE, ctx=decoded, deep=deep),
                                   atol=1e-5, rtol=0)


def test_files_of_another_kind_and_wrong_class_lists_are_refused(runs, tmp_path):
    kd, dpc = runs["root"] / "promptkd", runs["root"] / "dpc"
    with pytest.raises(CheckpointError, match="PromptKD\\+DPC run.*--format promptkd_dpc"):
        convert(dpc, tmp_path / "a", "promptkd")
    with pytest.raises(CheckpointError, match="not a PromptKD\\+DPC run.*--format promptkd"):
        convert(kd, tmp_path / "b", "promptkd_dpc", backbone=kd, classnames=NAMES)
    ivlp = {k: v for k, v in runs["kd"].items() if not k.startswith("VPT_image_trans")}
    ivlp["prompt_learner.ctx"] = torch.zeros(4, 64, dtype=torch.half)
    save_run(tmp_path / "ivlp", ivlp)
    with pytest.raises(CheckpointError, match="--format ivlp or --format promptsrc"):
        convert(tmp_path / "ivlp", tmp_path / "c", "promptkd")
    with pytest.raises(ConfigError, match="backbone="):
        convert(dpc, tmp_path / "d", "promptkd_dpc", classnames=NAMES)
    with pytest.raises(ConfigError, match="weight_new=0.2.*only weight_new=0"):
        convert(dpc, tmp_path / "e", "promptkd_dpc", backbone=kd, classnames=NAMES, weight_new=0.2)
    with pytest.raises(ClassNameError, match="trained on 4 base classes .* only 3 class names"):
        convert(dpc, tmp_path / "f", "promptkd_dpc", backbone=kd, classnames=NAMES[:3])
    with pytest.raises(ClassNameError, match="base_classes must be 4 names"):
        convert(dpc, tmp_path / "g", "promptkd_dpc", backbone=kd, classnames=NAMES, base_classes=NAMES[:2])
    out = convert(dpc, tmp_path / "h", backbone=kd, classnames=NAMES)
    with pytest.raises(ClassNameError, match=r"not \['white cone'\]"):
        pp.from_pretrained(copy.deepcopy(runs["student"]), out, teacher=teacher_of(runs, NAMES[:6]))
    other = pp.wrap(copy.deepcopy(runs["teacher"]), NAMES, method="coop", n_ctx=2)
    with pytest.raises(ConfigError, match="4 context tokens but the teacher's template takes 2"):
        pp.from_pretrained(copy.deepcopy(runs["student"]), out, teacher=other)
