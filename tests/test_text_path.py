"""Fast text path: shared class-agnostic prefix, multi-prompt-set passes, cached class features."""
import pytest
import torch

import prompt_plugins as pp
import prompt_plugins.text_requests as model_mod  # the module that runs the text tower for PromptedCLIP
from prompt_plugins.prompts.base import Prompts
from prompt_plugins.text_encoder import (
    encode_tokens, encode_tokens_multi, encode_tokens_reference, shared_prefix_length,
)
from prompt_plugins.tokenization import tokenize_classes
from tiny_models import images, make_model

NAMES = ["a", "very long class name with many different words in it", "cat", "x y", "spotted salamander"]


def _wrap(model, n_ctx=4, depth=1, **kw):
    prompted = pp.wrap(model, NAMES, n_ctx=n_ctx, depth=depth, **kw)
    with torch.no_grad():  # larger prompts than the N(0, 0.02) init, so errors would show
        for p in prompted.prompt.parameters():
            p.normal_(0, 0.5)
    return prompted


def _text_args(prompted):
    p = prompted.prompt()
    return p.text, p.text_deep


def _features_and_grads(fn, tensors, seed=0):
    feats = fn()
    w = torch.randn(feats.shape, generator=torch.Generator().manual_seed(seed))
    grads = torch.autograd.grad((feats.float() * w).sum(), tensors)
    return feats.detach(), grads


@pytest.mark.parametrize("n_ctx", [4, 16])
@pytest.mark.parametrize("deep", [False, True])
def test_shared_prefix_equals_full_length_reference(backend_name, clip_model, n_ctx, deep):
    prompted = _wrap(clip_model, n_ctx=n_ctx, depth=3 if deep else 1)
    ctx, text_deep = _text_args(prompted)
    tokens, backend = prompted.tokens, prompted.backend
    assert shared_prefix_length(tokens.ids, tokens.eot, n_ctx, [ctx]) == 1 + n_ctx
    tensors = [ctx] + ([text_deep] if deep else [])
    ours, g_ours = _features_and_grads(lambda: encode_tokens(backend, tokens, None, ctx, text_deep), tensors)
    ref, g_ref = _features_and_grads(lambda: encode_tokens_reference(backend, tokens, None, ctx, text_deep), tensors)
    assert ours.shape == (len(NAMES), 64)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    for a, b in zip(g_ours, g_ref):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    # a class subset (in any order) equals the matching rows
    sub = torch.tensor([3, 1])
    with torch.no_grad():
        torch.testing.assert_close(encode_tokens(backend, tokens, sub, ctx, text_deep), ref[sub], atol=1e-5, rtol=0)


def test_class_specific_context_falls_back_and_matches_reference(backend_name, clip_model):
    prompted = _wrap(clip_model, n_ctx=4, class_specific=True, depth=2)
    ctx, text_deep = _text_args(prompted)
    assert ctx.dim() == 3
    assert shared_prefix_length(prompted.tokens.ids, prompted.tokens.eot, 4, [ctx]) == 0
    args = (prompted.backend, prompted.tokens, None, ctx, text_deep)
    ours, g_ours = _features_and_grads(lambda: encode_tokens(*args), [ctx, text_deep])
    ref, g_ref = _features_and_grads(lambda: encode_tokens_reference(*args), [ctx, text_deep])
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("template, shared", [("{}.", 0), ("a photo of a {}.", 5)])
def test_no_context_tokens(backend_name, clip_model, template, shared):
    """n_ctx = 0: with the name first nothing is shared (plain path); template words before the
    name are shared like context."""
    prompted = pp.wrap(clip_model, NAMES, n_ctx=4)
    tokens = tokenize_classes(prompted.tokenizer, NAMES, context_length=77, template=template)
    assert shared_prefix_length(tokens.ids, tokens.eot, 0, [None]) == shared
    with torch.no_grad():
        ours = encode_tokens(prompted.backend, tokens)
        ref = encode_tokens_reference(prompted.backend, tokens)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_single_class_and_identical_prefix_rows(clip_model):
    prompted = _wrap(clip_model, n_ctx=4)
    ctx, _ = _text_args(prompted)
    tokens = prompted.tokens
    with torch.no_grad():
        ref = encode_tokens_reference(prompted.backend, tokens, None, ctx)
        for c in range(len(NAMES)):  # one class: everything up to its EOT is "shared"
            torch.testing.assert_close(encode_tokens(prompted.backend, tokens, torch.tensor([c]), ctx),
                                       ref[c:c + 1], atol=1e-5, rtol=0)


def test_multi_prompt_sets_equal_separate_passes(backend_name, clip_model):
    prompted = _wrap(clip_model, n_ctx=4, depth=3)
    ctx, text_deep = _text_args(prompted)
    frozen_ctx = torch.randn_like(ctx)  # e.g. DPC's frozen backbone prompt P
    frozen_deep = torch.randn_like(text_deep)[:1]  # shallower deep prompts
    base, new = torch.tensor([0, 1, 2]), torch.tensor([4, 3, 1])
    backend, tokens = prompted.backend, prompted.tokens
    sets = [(base, ctx, text_deep), (new, frozen_ctx, frozen_deep), (None, None, None),
            (new, Prompts(text=frozen_ctx))]

    def multi():
        return torch.cat(encode_tokens_multi(backend, tokens, sets))

    def separate():
        return torch.cat([encode_tokens_reference(backend, tokens, *s) for s in sets[:3]]
                         + [encode_tokens_reference(backend, tokens, new, frozen_ctx)])

    ours, g_ours = _features_and_grads(multi, [ctx, text_deep])
    ref, g_ref = _features_and_grads(separate, [ctx, text_deep])
    assert ours.shape == (3 + 3 + 5 + 3, 64)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_multi_with_class_specific_set_falls_back_per_set(clip_model):
    prompted = _wrap(clip_model, n_ctx=4, class_specific=True)
    ctx, _ = _text_args(prompted)
    with torch.no_grad():
        a, b = encode_tokens_multi(prompted.backend, prompted.tokens, [(None, ctx, None), (torch.tensor([2]), None, None)])
        torch.testing.assert_close(a, encode_tokens_reference(prompted.backend, prompted.tokens, None, ctx), atol=1e-5, rtol=0)
        torch.testing.assert_close(b, encode_tokens_reference(prompted.backend, prompted.tokens, torch.tensor([2])),
                                   atol=1e-5, rtol=0)


def test_gradient_checkpointing_gives_same_values_and_grads(backend_name, clip_model):
    prompted = _wrap(clip_model, n_ctx=4, depth=2)
    ctx, text_deep = _text_args(prompted)
    results = []
    for gc in (False, True):
        fn = lambda: encode_tokens(prompted.backend, prompted.tokens, None, ctx, text_deep, grad_checkpointing=gc)
        results.append(_features_and_grads(fn, [ctx, text_deep]))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-6, rtol=0)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("gc", [False, True])
def test_bf16_autocast_on_cpu(backend_name, clip_model, gc):
    prompted = _wrap(clip_model, n_ctx=4, depth=2)
    prompted.grad_checkpointing = gc
    ctx, text_deep = _text_args(prompted)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = prompted.encode_text()
        plain = torch.nn.functional.normalize(
            encode_tokens_multi(prompted.backend, prompted.tokens, [(None, ctx, text_deep)], share_prefix=False)[0].float(), dim=-1)
        feats.sum().backward()
    assert feats.dtype == torch.float32 and ctx.grad is not None and torch.isfinite(ctx.grad).all()
    with torch.no_grad():
        ref = prompted.encode_text()
    assert (feats - ref).abs().max() < 0.05
    assert (feats - plain).abs().max() < 0.05


def test_fp16_openai_model_matches_reference():
    model = make_model("openai", fp16=True)
    prompted = _wrap(model, n_ctx=4, depth=2)
    ctx, text_deep = _text_args(prompted)
    with torch.no_grad():
        ours = encode_tokens(prompted.backend, prompted.tokens, None, ctx, text_deep).float()
        ref = encode_tokens_reference(prompted.backend, prompted.tokens, None, ctx, text_deep).float()
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, atol=2e-2, rtol=0)


# ------------------------------------------------------------------------------------------ cache
@pytest.fixture
def counter(monkeypatch):
    calls = []
    real = model_mod.encode_tokens_multi

    def counting(backend, tokens, sets, **kw):
        calls.append(len(sets))
        return real(backend, tokens, sets, **kw)

    monkeypatch.setattr(model_mod, "encode_tokens_multi", counting)
    return calls


def test_cache_hits_when_nothing_changed(backend_name, clip_model, counter):
    prompted = _wrap(clip_model, n_ctx=4, depth=2)
    with torch.no_grad():
        a = prompted.encode_text()
        b = prompted.encode_text()
        c = prompted.encode_text(["cat", "a"])
        d = prompted.encode_text(torch.tensor([2, 0]))
        logits = prompted(images(2))
    assert counter == [1, 1]  # all classes once, the subset once (by name or by index)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(c, a[[2, 0]], atol=1e-5, rtol=0)
    torch.testing.assert_close(c, d, atol=0, rtol=0)
    assert logits.shape == (2, len(NAMES))
    b.add_(1.0)  # callers cannot corrupt the cache
    with torch.no_grad():
        torch.testing.assert_close(prompted.encode_text(), a, atol=0, rtol=0)
    prompted.eval()
    for p in prompted.prompt.parameters():  # frozen prompts: cached even with grad enabled
        p.requires_grad_(False)
    prompted.encode_text()
    assert counter == [1, 1]


def test_cache_never_used_for_trainable_prompts_with_grad(clip_model, counter):
    prompted = _wrap(clip_model, n_ctx=4)
    a = prompted.encode_text()
    b = prompted.encode_text()
    assert counter == [1, 1] and a.requires_grad and b.requires_grad
    a.sum().backward()
    assert prompted.prompt.ctx.grad is not None


def test_cache_invalidated_by_optimiser_step(backend_name, clip_model, counter):
    prompted = _wrap(clip_model, n_ctx=4, depth=2)
    opt = torch.optim.SGD(prompted.trainable_parameters(), lr=1.0)
    with torch.no_grad():
        before = prompted.encode_text()
    loss = prompted(images(2)).logsumexp(-1).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        after = prompted.encode_text()
        again = prompted.encode_text()
    assert counter == [1, 1, 1]  # before, training forward, after; `again` is a hit
    assert not torch.allclose(before, after, atol=1e-4)
    torch.testing.assert_close(after, again, atol=0, rtol=0)
    with torch.no_grad():  # load_state_dict also changes the prompts in place
        prompted.load_adapter_state_dict({f"prompt.{k}": torch.zeros_like(v) for k, v in prompted.prompt.state_dict().items()})
        zero = prompted.encode_text()
    assert len(counter) == 4 and not torch.allclose(zero, after, atol=1e-4)


def test_cache_invalidated_by_set_classnames_and_keyed_on_disabled(clip_model, counter):
    prompted = _wrap(clip_model, n_ctx=4)
    with torch.no_grad():
        tuned = prompted.encode_text()
        with prompted.disabled():
            zero_shot = prompted.encode_text()
            zero_shot_again = prompted.encode_text()
        tuned_again = prompted.encode_text()
    assert counter == [1, 1]
    assert not torch.allclose(tuned, zero_shot, atol=1e-4)
    torch.testing.assert_close(zero_shot, zero_shot_again, atol=0, rtol=0)
    torch.testing.assert_close(tuned, tuned_again, atol=0, rtol=0)
    prompted.set_classnames(["cat", "dog"])
    with torch.no_grad():
        renamed = prompted.encode_text()
        with prompted.disabled():
            prompted.encode_text()
    assert counter == [1, 1, 1, 1] and renamed.shape == (2, 64)
    torch.testing.assert_close(renamed[0], tuned[2], atol=1e-5, rtol=0)


def test_cache_for_given_prompt_tensors(clip_model, counter):
    """DPC-style: a frozen prompt tensor passed as prompts= is cached until it changes in place."""
    prompted = _wrap(clip_model, n_ctx=4)
    frozen = Prompts(text=prompted.prompt.ctx.detach().clone())
    a = prompted.encode_text(prompts=frozen)
    prompted.encode_text(prompts=frozen)
    assert counter == [1]
    frozen.text.mul_(2.0)
    b = prompted.encode_text(prompts=frozen)
    assert counter == [1, 1] and not torch.allclose(a, b, atol=1e-4)
    other = Prompts(text=frozen.text.clone())  # equal values, a new tensor: recomputed
    torch.testing.assert_close(prompted.encode_text(prompts=other), b, atol=1e-6, rtol=0)
    assert counter == [1, 1, 1]


def test_encode_text_multi_one_pass_and_cached_frozen_set(backend_name, clip_model, counter):
    prompted = _wrap(clip_model, n_ctx=4, depth=2)
    frozen = Prompts(text=torch.randn(4, 64), text_deep=torch.randn(1, 4, 64))
    requests = [(["a", "cat"], None), (["x y", "spotted salamander"], frozen)]
    base, new = prompted.encode_text_multi(requests)
    assert counter == [1, 1]  # the trainable set with a graph, the frozen one without
    torch.testing.assert_close(base, prompted.encode_text(["a", "cat"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(new, prompted.encode_text(["x y", "spotted salamander"], prompts=frozen), atol=1e-5, rtol=0)
    assert counter == [1, 1, 1]  # trainable set recomputed, the frozen one was a hit
    base2, new2 = prompted.encode_text_multi(requests)
    assert counter == [1, 1, 1, 1] and base2.requires_grad and not new2.requires_grad
    base2.sum().backward()
    assert prompted.prompt.ctx.grad is not None and prompted.prompt.text_deep.grad is not None


def test_encode_text_multi_without_grad_is_one_pass(clip_model, counter):
    prompted = _wrap(clip_model, n_ctx=4)
    frozen = Prompts(text=torch.randn(4, 64))
    with torch.no_grad():
        a, b = prompted.encode_text_multi([([0, 1], None), ([2, 3, 4], frozen)], normalize=False)
    assert counter == [2] and not a.requires_grad and not b.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(b, prompted.encode_text([2, 3, 4], prompts=frozen, normalize=False), atol=0, rtol=0)
    assert counter == [2]
