"""The released ctx-init rule (spec backbones.md §0), shared by MaPLe and IVLP (``prompts/ctx_init.py``): with
n_ctx <= 4 the first n_ctx tokens of ctx_init are learned and the rest stay as fixed words; with more tokens the
context is random; ``ctx_init_rule="whole"`` learns the whole phrase (CoOp's ``SoftPrompt``, unchanged)."""
import pytest
import torch

import prompt_plugins as pp
from prompt_plugins.prompts.ctx_init import ContextWords, split_ctx_init
from tiny_models import library_text_features, make_model


@pytest.fixture
def tokenizer():
    return pp.resolve(make_model("openai")).default_tokenizer()


@pytest.mark.parametrize("n_ctx, ctx_init, expected", [
    (2, "a photo of a", ContextWords(2, "a photo", "of a")),
    (3, "a photo of a", ContextWords(3, "a photo of", "a")),
    (4, "a photo of a", ContextWords(4, "a photo of a", "")),
    (None, "a photo of a", ContextWords(4, "a photo of a", "")),
    (5, "a photo of a", ContextWords(5, None, "")),           # > 4 tokens: random, nothing fixed (as released)
    (16, "a photo of a", ContextWords(16, None, "")),
    (2, "a_photo of_a", ContextWords(2, "a photo", "of a")),  # "_" reads as a space, as released
    (2, None, ContextWords(2, None, "")),
])
def test_released_rule(tokenizer, n_ctx, ctx_init, expected):
    assert split_ctx_init(tokenizer, n_ctx, ctx_init) == expected


def test_whole_rule_keeps_the_phrase(tokenizer):
    assert split_ctx_init(tokenizer, 4, "a photo of a", "whole") == ContextWords(4, "a photo of a", "")
    assert ContextWords(2, "a photo", "of a").template("{}.") == "of a {}."


@pytest.mark.parametrize("n_ctx, ctx_init, match", [
    (4, "a photo", r"'a photo' is 2 token\(s\), fewer than n_ctx=4.*end-of-text"),
])
def test_released_rule_refuses(tokenizer, n_ctx, ctx_init, match):
    with pytest.raises(pp.ConfigError, match=match):
        split_ctx_init(tokenizer, n_ctx, ctx_init)


def test_a_context_that_ends_inside_a_word_is_refused():
    """A tokenizer whose decode gives text that encodes to other ids (the context ends inside a word)."""
    from prompt_plugins.backends import Tokenizer

    words = {"ab": [1, 2], "c": [3]}
    tok = Tokenizer(encode=lambda t: [i for w in t.split() for i in words.get(w, [9])], sos_id=0, eot_id=5,
                    decode=lambda ids: {(2, 3): "b c", (1,): "a"}.get(tuple(ids), "?"))
    with pytest.raises(pp.ConfigError, match="ends inside a word.*ctx_init_rule='whole'"):
        split_ctx_init(tok, 1, "ab c")


def test_released_sequence_is_sos_ctx_of_a_name_dot_eot(classnames):
    """N_CTX 2 + "a photo of a": [SOS] c1 c2 of a {name} . [EOT], the ids the released trainer tokenizes, and at
    init the context is the embedding of "a photo", so the text features are the zero-shot ones."""
    import clip

    model = make_model("openai")
    for method in ("maple", "ivlp"):
        prompted = pp.wrap(model, classnames, method=method, n_ctx=2, ctx_init="a photo of a", depth=1,
                           **({"n_visual_ctx": 0} if method == "ivlp" else {}))
        assert prompted.template == "of a {}."
        released = clip.tokenize([f"a photo of a {c}." for c in classnames])
        length = prompted.tokens.ids.shape[1]
        assert torch.equal(prompted.tokens.ids, released[:, :length])
        assert torch.equal(prompted.tokens.eot, released.argmax(dim=-1))
        assert prompted.tokens.slots == slice(1, 3)
        zero_shot = library_text_features("openai", model, [f"a photo of a {c}." for c in classnames])
        torch.testing.assert_close(prompted.encode_text(), zero_shot, atol=1e-5, rtol=0)
        prompted.eject()


def test_ivlp_and_coop_keep_their_own_rules(classnames):
    """method="coop" learns the whole phrase as before (n_ctx must match it); method="ivlp" follows the released
    rule; with the same context both give the same module and features."""
    model = make_model("openai")
    with pytest.raises(pp.ConfigError, match="is 4 tokens but n_ctx=2"):
        pp.wrap(model, classnames, method="coop", n_ctx=2, ctx_init="a photo of a")
    ivlp = pp.wrap(model, classnames, method="ivlp", n_ctx=2, ctx_init="a photo of a", depth=2, n_visual_ctx=2)
    assert ivlp.template == "of a {}." and ivlp.prompt.ctx_words == "a photo" and ivlp.method == "ivlp"
    state = ivlp.prompt.state_dict()
    ivlp.eject()
    coop = pp.wrap(model, classnames, method="coop", n_ctx=2, ctx_init="a photo", depth=2, n_visual_ctx=2,
                   template="of a {}.")
    coop.prompt.load_state_dict(state)
    assert coop.prompt.options() == ivlp.prompt.options()  # the same saved prompt section
    assert torch.equal(coop.tokens.ids, ivlp.tokens.ids)
    whole = pp.wrap(make_model("openai"), classnames, method="ivlp", n_ctx=4, ctx_init="a photo of a",
                    ctx_init_rule="whole", depth=1, n_visual_ctx=0)
    assert whole.template == "{}." and whole.prompt.ctx_words == "a photo of a"
