"""Property tests (hypothesis) over shapes: batch, frames, classes, context length, prompt depths."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prompt_plugins as pp
from prompt_plugins.ops import (
    append_prompt_tokens, append_prompt_tokens_reference, replace_prompt_tokens, replace_prompt_tokens_reference,
)
from tiny_models import make_model

WORDS = ["red", "blue", "circle", "square", "star", "moving", "left", "tiny", "zebra", "x"]


@pytest.fixture(scope="module")
def model():
    return make_model("openai")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=st.integers(1, 3), frames=st.one_of(st.none(), st.integers(1, 4)),
    n_classes=st.integers(1, 5), n_ctx=st.integers(1, 8), depth=st.integers(1, 3),
    n_visual=st.integers(0, 3), seed=st.integers(0, 1000),
)
def test_logit_shapes_and_features(model, batch, frames, n_classes, n_ctx, depth, n_visual, seed):
    g = torch.Generator().manual_seed(seed)
    names = [" ".join(WORDS[j] for j in torch.randint(0, len(WORDS), (1 + i % 3,), generator=g).tolist()) + f" {i}"
             for i in range(n_classes)]
    # videos are built (B, T, 3, H, W): say so, since T=3 would be ambiguous with (B, C, T, H, W)
    prompted = pp.wrap(model, names, n_ctx=n_ctx, depth=depth, n_visual_ctx=n_visual, video_layout="BTCHW")
    try:
        shape = (batch, 3, 32, 32) if frames is None else (batch, frames, 3, 32, 32)
        logits = prompted(torch.randn(shape, generator=g))
        assert logits.shape == (batch, n_classes)
        assert torch.isfinite(logits).all()
        text = prompted.encode_text()
        torch.testing.assert_close(text.norm(dim=-1), torch.ones(n_classes), atol=1e-5, rtol=0)
        # any class subset gives the same rows as the full class list
        torch.testing.assert_close(prompted.encode_text([n_classes - 1]), text[[n_classes - 1]], atol=1e-5, rtol=0)
    finally:
        prompted.eject()


@settings(max_examples=25, deadline=None)
@given(videos=st.integers(1, 3), frames=st.integers(1, 5), length=st.integers(2, 9), n=st.integers(1, 4),
       width=st.sampled_from([4, 8]), layout=st.sampled_from(["NLD", "LND"]), temporal=st.booleans())
def test_prompt_ops_match_reference(videos, frames, length, n, width, layout, temporal):
    g = torch.Generator().manual_seed(videos * 100 + frames * 10 + length)
    seqs = videos * frames
    x = torch.randn((seqs, length, width) if layout == "NLD" else (length, seqs, width), generator=g)
    p = torch.randn(n, width, generator=g)
    t = torch.randn(frames, n, width, generator=g) if temporal else None
    out = append_prompt_tokens(x, p, t, layout=layout)
    torch.testing.assert_close(out, append_prompt_tokens_reference(x, p, t, layout=layout), atol=1e-6, rtol=0)
    if length > n:
        torch.testing.assert_close(replace_prompt_tokens(x, p, layout=layout),
                                   replace_prompt_tokens_reference(x, p, layout=layout), atol=1e-6, rtol=0)
