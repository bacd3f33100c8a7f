"""Fused prompt-token ops against their repeat+cat references: values and gradients (fp32, bf16
autocast, torch.compile), NLD and LND layouts, T in {1, 8, 32}; video pooling order (spec T5)."""
import pytest
import torch

import prompt_plugins as pp
from prompt_plugins import ops
from prompt_plugins.errors import ShapeError
from tiny_models import images, make_model

N_VID, LEN, N_PROMPT, WIDTH = 2, 5, 3, 8


def _inputs(frames: int, layout: str, temporal: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n_seq = N_VID * frames
    shape = (n_seq, LEN, WIDTH) if layout == "NLD" else (LEN, n_seq, WIDTH)
    x = torch.randn(shape, generator=g, requires_grad=True)
    p = torch.randn(N_PROMPT, WIDTH, generator=g, requires_grad=True)
    t = torch.randn(frames, N_PROMPT, WIDTH, generator=g, requires_grad=True) if temporal else None
    return x, p, t


def _grads(fn, x, p, t, weight):
    out = fn(x, p, t)
    (out.float() * weight).sum().backward()
    grads = [v.grad.clone() for v in (x, p, t) if v is not None]
    for v in (x, p, t):
        if v is not None:
            v.grad = None
    return out.detach(), grads


@pytest.mark.parametrize("frames", [1, 8, 32])
@pytest.mark.parametrize("layout", ["NLD", "LND"])
@pytest.mark.parametrize("temporal", [False, True])
def test_append_matches_reference(frames, layout, temporal):
    x, p, t = _inputs(frames, layout, temporal)
    fused = lambda x, p, t: ops.append_prompt_tokens(x, p, t, layout=layout)
    ref = lambda x, p, t: ops.append_prompt_tokens_reference(x, p, t, layout=layout)
    weight = torch.randn(ref(x, p, t).shape, generator=torch.Generator().manual_seed(9))
    out_f, g_f = _grads(fused, x, p, t, weight)
    out_r, g_r = _grads(ref, x, p, t, weight)
    assert out_f.shape == out_r.shape and out_f.is_contiguous()
    torch.testing.assert_close(out_f, out_r, atol=1e-6, rtol=0)
    for a, b in zip(g_f, g_r):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    # the temporal offsets reach the right frames: frame f of every video carries p + t[f]
    tail = out_f[:, LEN:] if layout == "NLD" else out_f[LEN:].transpose(0, 1)
    for f in range(frames):
        expect = p + (t[f] if temporal else 0)
        torch.testing.assert_close(tail[f], expect.detach(), atol=0, rtol=0)
        torch.testing.assert_close(tail[frames + f], expect.detach(), atol=0, rtol=0)


@pytest.mark.parametrize("frames", [1, 8, 32])
@pytest.mark.parametrize("layout", ["NLD", "LND"])
def test_replace_matches_reference(frames, layout):
    x, p, _ = _inputs(frames, layout, False)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    out_f, g_f = _grads(lambda x, p, t: ops.replace_prompt_tokens(x, p, layout=layout), x, p, None, weight)
    out_r, g_r = _grads(lambda x, p, t: ops.replace_prompt_tokens_reference(x, p, layout=layout), x, p, None, weight)
    torch.testing.assert_close(out_f, out_r, atol=1e-6, rtol=0)
    for a, b in zip(g_f, g_r):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    # the replaced positions get no gradient back into x
    grad_x = g_f[0] if layout == "NLD" else g_f[0].transpose(0, 1)
    assert grad_x[:, -N_PROMPT:].abs().sum() == 0 and grad_x[:, :-N_PROMPT].abs().sum() > 0


@pytest.mark.parametrize("layout", ["NLD", "LND"])
def test_ops_under_bf16_autocast(layout):
    frames = 8
    x, p, t = _inputs(frames, layout, True)
    lin = torch.nn.Linear(WIDTH, WIDTH)
    weight = torch.randn(N_VID * frames, generator=torch.Generator().manual_seed(1))

    def run(append, replace):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = lin(x)  # bf16 activations, fp32 prompts: the ops cast prompts to the activation dtype
            assert h.dtype == torch.bfloat16
            h = append(h, p, t, layout=layout)
            appended = h.detach().float()
            h = replace(lin(h), p * 2, layout=layout)
        assert h.dtype == torch.bfloat16
        loss = (h.float().sum(dim=-1).sum(dim=0 if layout == "LND" else 1) * weight).sum()
        grads = torch.autograd.grad(loss, [x, p, t])
        return appended, h.detach().float(), grads

    app_f, out_f, g_f = run(ops.append_prompt_tokens, ops.replace_prompt_tokens)
    app_r, out_r, g_r = run(ops.append_prompt_tokens_reference, ops.replace_prompt_tokens_reference)
    torch.testing.assert_close(app_f, app_r, atol=0, rtol=0)  # the op itself: bit-identical bf16
    # after a bf16 matmul the reference's non-contiguous (transposed) layout may round differently
    torch.testing.assert_close(out_f, out_r, atol=1.6e-2, rtol=1.6e-2)
    for a, b in zip(g_f, g_r):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def _compile_or_skip(fn, layout):
    try:
        compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
        x, p, t = _inputs(2, layout, True)
        compiled(x, p, t)
    except Exception as exc:  # pragma: no cover - depends on the machine's toolchain
        pytest.skip(f"torch.compile unavailable here: {type(exc).__name__}: {exc}")
    return compiled


@pytest.mark.parametrize("layout", ["NLD", "LND"])
def test_ops_under_torch_compile(layout):
    def fused(x, p, t):
        h = ops.append_prompt_tokens(x, p, t, layout=layout)
        return ops.replace_prompt_tokens(h * 2, p, layout=layout)

    def ref(x, p, t):
        h = ops.append_prompt_tokens_reference(x, p, t, layout=layout)
        return ops.replace_prompt_tokens_reference(h * 2, p, layout=layout)

    compiled = _compile_or_skip(fused, layout)
    for frames in (1, 8):
        x, p, t = _inputs(frames, layout, True, seed=frames)
        weight = torch.randn(ref(x, p, t).shape, generator=torch.Generator().manual_seed(4))
        out_c, g_c = _grads(compiled, x, p, t, weight)
        out_r, g_r = _grads(ref, x, p, t, weight)
        torch.testing.assert_close(out_c, out_r, atol=1e-6, rtol=0)
        for a, b in zip(g_c, g_r):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_temporal_frame_count_must_divide_batch():
    x = torch.randn(6, LEN, WIDTH)
    with pytest.raises(ShapeError, match="whole number of videos of T=4"):
        ops.append_prompt_tokens(x, torch.randn(N_PROMPT, WIDTH), torch.zeros(4, N_PROMPT, WIDTH))
    with pytest.raises(ShapeError, match="do not match prompts"):
        ops.append_prompt_tokens(x, torch.randn(N_PROMPT, WIDTH), torch.zeros(3, N_PROMPT + 1, WIDTH))


def test_pooling_order_t5():
    feats = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    pooled = ops.pool_frames(feats, frames=2)
    torch.testing.assert_close(pooled, torch.tensor([[0.3162, 0.9487]]), atol=1e-4, rtol=0)
    wrong = torch.nn.functional.normalize(feats, dim=-1).mean(0)  # normalise-then-mean: [0.7071, 0.7071]
    assert not torch.allclose(pooled[0], wrong, atol=1e-2)
    torch.testing.assert_close(ops.pool_frames_reference(feats, 2), pooled)


@pytest.mark.parametrize("frames", [1, 8, 32])
def test_video_logits_match_reference(frames):
    g = torch.Generator().manual_seed(frames)
    feats = torch.randn(3 * frames, 16, generator=g, requires_grad=True)
    text = torch.nn.functional.normalize(torch.randn(5, 16, generator=g), dim=-1)
    out = ops.video_logits(feats, text, frames, scale=100.0)
    ref = ops.video_logits_reference(feats, text, frames, scale=100.0)
    assert out.shape == (3, 5)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    (ga,) = torch.autograd.grad(out.sum(), feats)
    (gb,) = torch.autograd.grad(ref.sum(), feats)
    torch.testing.assert_close(ga, gb, atol=1e-6, rtol=1e-5)  # scale 100: relative fp32 rounding


def test_temporal_prompts_in_a_model(backend_name, classnames):
    model = make_model(backend_name)
    prompted = pp.wrap(model, classnames, n_ctx=2, n_visual_ctx=2, depth=2, temporal_frames=3,
                       video_layout="BTCHW")  # (2, 3, 3, H, W) videos: T=3 frames, said explicitly
    assert prompted.prompt.temporal.shape == (3, 2, prompted.backend.vision_width)
    assert prompted.prompt.temporal.abs().sum() == 0  # starts as frame-shared prompts
    video = images(2, frames=3)
    shared = prompted.encode_image(video)
    with torch.no_grad():  # in-place deep replacement under no_grad gives the same features
        torch.testing.assert_close(prompted.encode_image(video), shared, atol=1e-6, rtol=0)
    # zero offsets: identical to the frame-shared prompts; each frame then mean-pooled (T5)
    frames = torch.stack([prompted.encode_image(video[:, f], normalize=False) for f in range(3)], 1)
    torch.testing.assert_close(shared, torch.nn.functional.normalize(frames.mean(1), dim=-1), atol=1e-5, rtol=0)
    with torch.no_grad():
        prompted.prompt.temporal[1] += torch.randn(prompted.prompt.temporal[1].shape)  # (not constant: ln_pre)
    moved = prompted.encode_image(video)
    assert not torch.allclose(moved, shared, atol=1e-4)
    # frame 1 alone sees visual + temporal[1]: rebuild it with plain prompts and pool by hand
    pr = prompted.prompt()
    shifted = pp.Prompts(text=pr.text, text_deep=pr.text_deep, visual=pr.visual + pr.temporal[1],
                         visual_deep=pr.visual_deep)
    f1 = prompted.encode_image(video[:, 1], prompts=shifted, normalize=False)
    expect = torch.nn.functional.normalize((frames[:, 0] + f1 + frames[:, 2]) / 3, dim=-1)
    torch.testing.assert_close(moved, expect, atol=1e-5, rtol=0)
    loss = prompted(video).logsumexp(-1).sum()
    loss.backward()
    assert prompted.prompt.temporal.grad.abs().sum() > 0
    with pytest.raises(ShapeError, match="T=3 frames, got videos of T=4"):
        prompted.encode_image(images(1, frames=4))


@pytest.mark.parametrize("layout", ["NLD", "LND"])
def test_replace_writes_in_place_only_when_autograd_does_not_track(layout):
    x, p, _ = _inputs(4, layout, False)
    ref = ops.replace_prompt_tokens_reference(x, p, layout=layout).detach()
    with torch.no_grad():
        buf = x.detach().clone()
        out = ops.replace_prompt_tokens(buf, p, layout=layout)
    assert out.data_ptr() == buf.data_ptr()  # inference: no second activation buffer
    torch.testing.assert_close(out, ref, atol=0, rtol=0)
    tracked = ops.replace_prompt_tokens(x, p, layout=layout)
    assert tracked.data_ptr() != x.data_ptr() and tracked.requires_grad  # training: x is left intact
    torch.testing.assert_close(tracked.detach(), ref, atol=0, rtol=0)
