"""The extension points every backbone method builds on: ``Prompts.image_head`` / ``class_features``, the prompt
module's ``prompt_tensor_names`` (what DPC clones), a checkpoint's own tower weights (``tower.*``), and fixed prompt
words read back from their token embeddings (``template.fixed``)."""
from __future__ import annotations

from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import prompt_plugins as pp
from prompt_plugins.checkpoint import FIXED_WORDS_KEY
from prompt_plugins.config import Config
from prompt_plugins.errors import CheckpointError, ConfigError
from prompt_plugins.importers.dassl import fixed_suffix_tokens, tower_tensors
from prompt_plugins.prompts import Prompts, PromptModule, SoftPrompt
from prompt_plugins.tokenization import words_of_embeddings
from tiny_models import images, make_model


class _HeadConfig(Config):
    pass


class HeadPrompt(PromptModule):
    """Visual prompts + a linear head on the image features + stored class features (PromptKD's shape)."""

    type_name = ""
    config_class = _HeadConfig
    provides_class_features: ClassVar[bool] = True
    provides_image_head: ClassVar[bool] = True

    def __init__(self, soft: SoftPrompt, embed_dim: int, out_dim: int, bank: dict[str, torch.Tensor]):
        super().__init__()
        self.soft, self.n_ctx = soft, soft.n_ctx
        self.head = nn.Linear(embed_dim, out_dim)
        self.bank = bank
        self.rows: list[str] = []

    def bind_classnames(self, classnames: list[str]) -> None:
        self.rows = list(classnames)

    def forward(self) -> Prompts:
        p = self.soft()
        w, b = self.head.weight, self.head.bias
        feats = torch.stack([self.bank[c] for c in self.rows])
        return Prompts(visual=p.visual, visual_deep=p.visual_deep, image_head=lambda f: F.linear(f, w, b),
                       class_features=feats)


def _head_prompted(names):
    model = make_model("openai")
    backend = pp.resolve(model)
    soft = SoftPrompt(backend.text_width, 2, vision_width=backend.vision_width, n_visual_ctx=2, depth=1)
    g = torch.Generator().manual_seed(3)
    bank = {c: torch.randn(24, generator=g) for c in ["a", "b", "c"]}
    module = HeadPrompt(soft, backend.embed_dim, 24, bank)
    return model, pp.PromptedCLIP(model, names, module), bank


def test_image_head_and_class_features_replace_the_clip_sides():
    model, prompted, bank = _head_prompted(["a", "b", "c"])
    x = images(3)
    feats = prompted.encode_image(x, normalize=False)
    p = prompted.prompt()
    with prompted._hooks.active(p):
        raw = model.encode_image(x).float()
    torch.testing.assert_close(feats, p.image_head(raw))
    assert feats.shape == (3, 24)
    text = prompted.encode_text(["c", "a"])
    torch.testing.assert_close(text, F.normalize(torch.stack([bank["c"], bank["a"]]), dim=-1))
    logits = prompted(x)
    assert logits.shape == (3, 3)
    logits.sum().backward()  # the head trains through the logits
    assert prompted.prompt.head.weight.grad is not None and prompted.prompt.soft.visual.grad is not None


def test_disabled_is_the_plain_clip_even_with_a_head():
    model, prompted, _ = _head_prompted(["a", "b"])
    x = images(2)
    with prompted.disabled():
        feats = prompted.encode_image(x)
        text = prompted.encode_text()
    torch.testing.assert_close(feats, F.normalize(model.encode_image(x).float(), dim=-1))
    assert text.shape[1] == model.text_projection.shape[1]  # the CLIP's own text tower, not the stored features


def test_bind_classnames_sees_every_new_class_list():
    _, prompted, _ = _head_prompted(["a", "b"])
    prompted.set_classnames(["b", "c", "a"])
    assert prompted.prompt.rows == ["b", "c", "a"]
    assert prompted.encode_text().shape == (3, 24)


def test_dpc_clones_what_the_module_names_as_its_prompt_tensors(classnames):
    model = make_model("openai")
    prompted = pp.wrap(model, classnames, method="coop", n_ctx=2, depth=2, n_visual_ctx=2)
    wrapper = pp.DualPromptWrapper(prompted, classnames[:2])
    assert wrapper.tensor_names == prompted.prompt.prompt_tensor_names() == ["ctx", "text_deep", "visual",
                                                                             "visual_deep"]


# ------------------------------------------------------------------------------------------ tower weights
def test_tower_weights_run_the_model_and_eject_restores_it_bit_for_bit(classnames, tmp_path):
    model = make_model("openai")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = make_model("openai", seed=5)
    towers = {k: v for k, v in other.state_dict().items() if k.startswith("visual.")}
    prompted = pp.wrap(model, classnames, method="coop", n_ctx=2)
    x = images(2)
    prompted.set_tower_weights(towers)
    torch.testing.assert_close(prompted.encode_image(x), F.normalize(other.encode_image(x).float(), dim=-1))
    pp.save_pretrained(prompted, tmp_path / "a")
    prompted.eject()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    again = pp.from_pretrained(model, tmp_path / "a")  # the tower.* tensors travel with the adapter
    torch.testing.assert_close(again.encode_image(x), F.normalize(other.encode_image(x).float(), dim=-1))
    again.eject()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_tower_weights_that_do_not_fit_are_refused_naming_them(classnames):
    prompted = pp.wrap(make_model("openai"), classnames, method="coop", n_ctx=2)
    with pytest.raises(CheckpointError, match="has no \\['visual.nope'\\]"):
        prompted.set_tower_weights({"visual.nope": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="shape"):
        prompted.set_tower_weights({"visual.conv1.weight": torch.zeros(3)})


def test_released_tower_keys_map_onto_clip_names():
    model = make_model("openai")
    own = model.state_dict()
    released = {"image_encoder.conv1.weight": own["visual.conv1.weight"], "image_encoder.VPT": torch.zeros(2, 64),
                "text_encoder.transformer.resblocks.0.attn.in_proj_weight": own["transformer.resblocks.0.attn.in_proj_weight"],
                "text_encoder.transformer.resblocks.1.VPT_shallow": torch.zeros(2, 64),
                "text_encoder.ln_final.weight": own["ln_final.weight"], "logit_scale": own["logit_scale"],
                "text_encoder.text_projection": own["text_projection"], "prompt_learner.ctx": torch.zeros(2, 64)}
    mapped = tower_tensors(released)
    assert sorted(mapped) == sorted(["visual.conv1.weight", "transformer.resblocks.0.attn.in_proj_weight",
                                     "ln_final.weight", "logit_scale", "text_projection"])
    assert set(mapped) <= set(own)


# ------------------------------------------------------------------------------------------ fixed words
def _suffix(model, names, fixed_words):
    tok = pp.resolve(model).default_tokenizer()
    rows = []
    for name in names:
        ids = tok.encode(f"{fixed_words} {name}.".strip()) + [tok.eot_id]
        ids = ids + [0] * (20 - len(ids))
        rows.append(model.token_embedding(torch.tensor(ids)))
    return torch.stack(rows).detach()


@pytest.mark.parametrize("words", ["of a", ""])
def test_fixed_words_are_read_from_the_suffix_and_back_into_text(words):
    model = make_model("openai")
    suffix = _suffix(model, ["red circle", "blue square", "green triangle"], words)
    fixed = fixed_suffix_tokens({"prompt_learner.token_suffix": suffix})
    assert fixed.shape[0] == len(words.split())
    if words:
        backend = pp.resolve(model)
        assert words_of_embeddings(backend.default_tokenizer(), backend.vocabulary(), fixed) == words


def test_fixed_words_of_another_clip_are_refused_naming_template():
    model, other = make_model("openai"), make_model("openai", seed=9)
    fixed = fixed_suffix_tokens({"prompt_learner.token_suffix": _suffix(other, ["red circle", "blue square"], "of a")})
    backend = pp.resolve(model)
    with pytest.raises(ConfigError, match="template="):
        words_of_embeddings(backend.default_tokenizer(), backend.vocabulary(), fixed)


def test_an_adapter_with_fixed_words_loads_with_them_in_its_template(classnames, tmp_path):
    model = make_model("openai")
    prompted = pp.wrap(model, classnames, method="coop", n_ctx=2)
    fixed = fixed_suffix_tokens({"prompt_learner.token_suffix": _suffix(model, classnames, "of a")})
    from prompt_plugins.checkpoint import RawAdapter

    config = prompted.adapter_config()
    state = {**prompted.adapter_state_dict(), FIXED_WORDS_KEY: fixed}
    pp.save_pretrained(RawAdapter(config, state), tmp_path / "a")
    prompted.eject()
    loaded = pp.from_pretrained(model, tmp_path / "a")
    assert loaded.template == "of a {}."
    assert FIXED_WORDS_KEY not in loaded.adapter_state_dict()  # saved again, the words are text
    reference = pp.wrap(make_model("openai"), classnames, method="coop", n_ctx=2, template="of a {}.")
    reference.load_adapter_state_dict(prompted.adapter_state_dict())
    x = images(2)
    torch.testing.assert_close(loaded(x), reference(x))


def test_towers_the_prompts_were_trained_on_are_compared_at_load(classnames, tmp_path):
    """An imported full-model file records its towers' per-tensor sums; loading into a CLIP whose towers differ warns
    with the count and the fix, loading into the same CLIP (as fp32 values of the fp16 weights) does not."""
    import warnings

    from prompt_plugins.checkpoint import RawAdapter
    from prompt_plugins.errors import TowerMismatchWarning
    from prompt_plugins.importers.dassl import tower_section

    model = make_model("openai")
    own = model.state_dict()
    released = {"image_encoder." + k[len("visual."):]: v.half() for k, v in own.items() if k.startswith("visual.")}
    prompted = pp.wrap(model, classnames, method="coop", n_ctx=2)
    kept, report = tower_section(released, keep=False)
    assert kept == {} and report["kept"] is False
    config = prompted.adapter_config().replace(imported_from={"source": "x.pth", "towers": report})
    pp.save_pretrained(RawAdapter(config, prompted.adapter_state_dict()), tmp_path / "a")
    prompted.eject()
    with torch.no_grad():
        for p in model.visual.parameters():
            p.copy_(p.half().float())  # the fp16 values as fp32: the same towers
    with warnings.catch_warnings():
        warnings.simplefilter("error", TowerMismatchWarning)
        pp.from_pretrained(model, tmp_path / "a").eject()
    with torch.no_grad():
        model.visual.ln_post.weight.add_(1e-3)
    with pytest.warns(TowerMismatchWarning, match="1 of the .* differ .*keep_towers=True"):
        pp.from_pretrained(model, tmp_path / "a").eject()
    kept, report = tower_section(released, keep=True)
    assert report["kept"] and set(kept) == {"tower.visual." + k[len("image_encoder."):] for k in released}
