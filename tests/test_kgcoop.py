"""KgCoOp: the knowledge-guided term against derived numbers and its ½·mean squared L2 identity, CoOp's per-data-set
templates for every data set of ``prompt_plugins.data``, ``method="kgcoop"`` on every backend (round trip,
``disabled()``, ``eject()``, DPC's new classes identical), and the ``kgcoop`` importer on files written as
Dassl.ProGrad writes them (told apart from CoOp files both ways)."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins.errors import CheckpointError, ClassNameError, ConfigError, ShapeError
from prompt_plugins.methods.kgcoop import COOP_TEMPLATES, hand_crafted_template
from tiny_models import images, library_image_features, library_text_features, make_model


def test_knowledge_guided_term_numbers_and_identity():
    loss = pp.KnowledgeGuidedLoss()  # W = 8 as released
    text = torch.tensor([[2.0, 0.0], [0.0, 3.0]], requires_grad=True)  # normalised inside: [1, 0], [0, 1]
    frozen = torch.tensor([[0.6, 0.8], [0.0, 5.0]])
    value = loss(text, frozen)  # cos = (0.6, 1.0): 8 * (1 - 0.8) = 1.6
    assert abs(value.item() - 1.6) < 1e-6
    value.backward()
    assert text.grad.abs().sum() > 0
    g = torch.Generator().manual_seed(0)
    t, w = torch.randn(5, 16, generator=g), torch.randn(5, 16, generator=g)
    half_l2 = 0.5 * ((F.normalize(t, dim=-1) - F.normalize(w, dim=-1)) ** 2).sum(-1).mean()
    torch.testing.assert_close(pp.KnowledgeGuidedLoss(weight=3.0)(t, w), 3.0 * half_l2)
    with pytest.raises(ShapeError, match="same classes"):
        loss(t, w[:4])
    with pytest.raises(ConfigError, match="weight=-1"):
        pp.KnowledgeGuidedLoss(weight=-1)
    with pytest.raises(ConfigError, match="both choose the frozen prompt"):
        pp.KnowledgeGuidedLoss(template="a {}.", dataset="OxfordPets")


def test_templates_cover_every_coop_data_set_by_its_names():
    from prompt_plugins.data.coop import ALIASES, COOP_DATASETS
    from prompt_plugins.methods.kgcoop.templates import knows

    assert len(COOP_DATASETS) == 11
    for key, layout in COOP_DATASETS.items():
        assert layout.name in COOP_TEMPLATES, layout.name  # Dassl's DATASET.NAME, what task.dataset holds
        for name in (key, layout.name, layout.dataset_dir):
            assert knows(name) and hand_crafted_template(name) == COOP_TEMPLATES[layout.name], name
    for alias, key in ALIASES.items():
        assert hand_crafted_template(alias) == COOP_TEMPLATES[COOP_DATASETS[key].name], alias
    assert hand_crafted_template("oxford_pets") == "a photo of a {}, a type of pet."
    assert hand_crafted_template("eurosat") == "a centered satellite photo of {}."
    assert hand_crafted_template("food-101") == "a photo of {}, a type of food."
    assert hand_crafted_template("ucf101") == "a photo of a person doing {}."
    assert hand_crafted_template("my_photos") == "a photo of a {}." and not knows("my_photos")
    assert hand_crafted_template(None) == "a photo of a {}."


def test_wrap_round_trip_disabled_eject_on_every_backend(backend_name, clip_model, classnames, tmp_path):
    before = {k: v.clone() for k, v in clip_model.state_dict().items()}
    prompted = pp.wrap(clip_model, classnames, method="kgcoop")
    assert (prompted.prompt.n_ctx, prompted.prompt.ctx_words, prompted.method) == (4, "a photo of a", "kgcoop")
    zero_target = pp.KnowledgeGuidedLoss(template="a photo of a {}.")
    with torch.no_grad():  # "a photo of a" + "{}." is that template: no distance at initialisation
        assert abs(float(zero_target(prompted.encode_text(), zero_target.targets(prompted)))) < 1e-5
    x, y = images(2), torch.tensor([0, 1])
    loss = pp.KnowledgeGuidedLoss(dataset="OxfordPets")
    assert loss.template == "a photo of a {}, a type of pet."
    opt = torch.optim.SGD(prompted.trainable_parameters(), lr=0.5)
    for _ in range(2):
        value = loss.from_model(prompted, x, y, classes=[0, 1])
        opt.zero_grad()
        value.backward()
        opt.step()
    assert loss.targets.computed == 1  # the frozen target once for the class list
    logits = prompted(x)
    pp.save_pretrained(prompted, tmp_path / "a")
    with prompted.disabled():
        zero_shot = prompted(x)
    prompted.eject()
    assert all(torch.equal(v, before[k]) for k, v in clip_model.state_dict().items())
    loaded = pp.from_pretrained(clip_model, tmp_path / "a")
    assert loaded.method == "kgcoop"
    torch.testing.assert_close(loaded(x), logits, atol=1e-5, rtol=0)
    with loaded.disabled():
        torch.testing.assert_close(loaded(x), zero_shot, atol=1e-6, rtol=0)
    text = library_text_features(backend_name, clip_model, [f"a photo of a {c}." for c in classnames])
    image = library_image_features(backend_name, clip_model, x)
    scale = pp.resolve(clip_model).logit_scale.exp().float()
    torch.testing.assert_close(zero_shot, scale * image @ text.t(), atol=1e-4, rtol=0)  # the library's zero-shot
    dpc = pp.DualPromptWrapper(loaded, classnames[:2])
    assert dpc.tensor_names == ["ctx"]
    F.cross_entropy(dpc(x, classes=[0, 1]), y).backward()
    torch.optim.SGD(dpc.trainable_parameters(), lr=1.0).step()
    with torch.no_grad():
        assert torch.equal(dpc(x, classes=[2, 3]), loaded(x, [2, 3]))
        assert not torch.allclose(dpc(x, classes=[0, 1]), loaded(x, [0, 1]), atol=1e-4)


# ------------------------------------------------------------------------------------------ importer
NAMES = ["red circle", "blue square", "green triangle"]


def _kgcoop_run(tmp_path, model, name="run"):
    import backbone_files as bf

    ctx = 0.02 * torch.randn(4, model.ln_final.weight.shape[0], generator=torch.Generator().manual_seed(3))
    state = bf.kgcoop_state(model, NAMES, ctx)
    bf.save_dassl(tmp_path / name / "prompt_learner" / "model.pth.tar-100", state, 100, val_result=False)
    return state


def test_kgcoop_files_convert_and_match_the_reference(tmp_path, capsys):
    pytest.importorskip("clip")
    import backbone_files as bf
    from prompt_plugins.cli import main
    from prompt_plugins.importers import convert, detect_format

    model = bf.fp16_pristine(make_model("openai"))
    state = _kgcoop_run(tmp_path, model)
    assert detect_format(tmp_path / "run") == "kgcoop"
    out = convert(tmp_path / "run", tmp_path / "adapter", classnames=NAMES)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["method"] == "kgcoop" and "meta_net.linear1.weight" in config["imported_from"]["dropped"]
    prompted = pp.from_pretrained(model, out)
    x = images(2)
    reference = bf.reference_logits(model, NAMES, x, {"ctx": state["ctx"].float()})
    torch.testing.assert_close(prompted(x), reference, atol=1e-5, rtol=1e-5)
    with pytest.raises(ClassNameError, match="trained on 3 classes"):
        convert(tmp_path / "run", tmp_path / "b", classnames=NAMES[:2])
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "c")]) == 0
    assert "(kgcoop)" in capsys.readouterr().out


def test_coop_and_kgcoop_files_are_told_apart(tmp_path):
    pytest.importorskip("clip")
    import backbone_files as bf
    from prompt_plugins.importers import convert, detect_format, get_importer

    model = make_model("openai")
    state = _kgcoop_run(tmp_path, model, "kg")
    coop = {k: state[k] for k in ("ctx", "token_prefix", "token_suffix")}
    bf.save_dassl(tmp_path / "coop" / "prompt_learner" / "model.pth.tar-50", coop, 50)
    assert detect_format(tmp_path / "coop") == "coop" and detect_format(tmp_path / "kg") == "kgcoop"
    assert not get_importer("coop").detect(tmp_path / "kg") and not get_importer("kgcoop").detect(tmp_path / "coop")
    with pytest.raises(CheckpointError, match="not a KgCoOp .*reads as \\['coop'\\]: pass --format coop"):
        convert(tmp_path / "coop", tmp_path / "x", format="kgcoop")
