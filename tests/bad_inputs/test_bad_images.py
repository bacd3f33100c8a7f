"""Bad images and videos (issue 15): dtype, 0-255 floats, NaN/inf, layouts (the ambiguous T = 3 case is refused
rather than guessed), non-tensors. Ids start with the kind of behaviour each case had before (``bad_cases``)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import prompt_plugins as pp
from prompt_plugins.errors import ConfigError, PromptPluginsError, ShapeError
from prompt_plugins.inputs import PIXEL_BOUND, check_images
from bad_cases import NAMES, refused, wrapped
from tiny_models import images

RANGE = ("look like 0-255 pixels", "x / 255", "check_range=False")
NAN = ("NaN/inf values", "NaN logits")


@pytest.fixture
def prompted(model):
    yield from wrapped(model, n_visual_ctx=2)


def _with(x, index, value):
    x = x.clone()
    x[index] = value
    return x


class _PILImage:  # stands for PIL.Image.Image: only the type name matters to the check
    pass


_PILImage.__name__ = "Image"

IMAGE_CASES = [
    pytest.param(lambda: torch.rand(2, 3, 32, 32) * 255, RANGE, id="silent-float-0-255-images"),
    pytest.param(lambda: torch.rand(2, 4, 3, 32, 32) * 255, RANGE, id="silent-float-0-255-video"),
    pytest.param(lambda: (torch.rand(2, 3, 32, 32) * 255).half(), RANGE, id="silent-fp16-0-255-images"),
    pytest.param(lambda: torch.rand(2, 3, 32, 32) * -255, RANGE, id="silent-negated-0-255-images"),
    pytest.param(lambda: _with(images(2), (0, 0, 0, 0), float("nan")), ("1 NaN/inf values", "NaN logits"),
                 id="silent-one-nan-pixel"),
    pytest.param(lambda: _with(images(2), (1, 2, 5, 5), float("inf")), NAN, id="silent-inf-pixel"),
    pytest.param(lambda: _with(images(2), (1, 2, 5, 5), float("-inf")), NAN, id="silent-minus-inf-pixel"),
    pytest.param(lambda: _with(images(2, frames=4), (1, 3), float("nan")), ("3072 NaN/inf values",),
                 id="silent-nan-frame-in-a-video"),
    pytest.param(lambda: images(2, frames=3), ("ambiguous", "(B, T, C, H, W)", "(B, C, T, H, W)",
                                               "layout='BTCHW'", "layout='BCTHW'", "video_layout"),
                 id="silent-ambiguous-T3-video"),
    pytest.param(lambda: images(2, frames=8).transpose(1, 2), ("look like (B, C, T, H, W)", "T=8",
                                                               "permute(0, 2, 1, 3, 4)", "layout='BCTHW'"),
                 id="unclear-channels-first-video"),
    pytest.param(lambda: torch.randn(2, 32, 32, 3), ("channels-last", "permute(0, 3, 1, 2)"),
                 id="unclear-channels-last-images"),
    pytest.param(lambda: torch.randn(2, 4, 32, 32, 3), ("channels-last", "permute(0, 1, 4, 2, 3)"),
                 id="unclear-channels-last-video"),
    pytest.param(lambda: torch.randn(2, 1, 32, 32), ("got 1", "grayscale", "expand"), id="unclear-grayscale"),
    pytest.param(lambda: torch.randn(3, 32, 32), ("got shape (3, 32, 32)", "unsqueeze(0)"),
                 id="unclear-one-image-without-batch"),
    pytest.param(lambda: torch.randn(1, 2, 2, 3, 32, 32), ("expected images (B, 3, H, W) or videos",),
                 id="ok-six-dims"),
    pytest.param(lambda: torch.randn(2, 3, 32, 16), ("expected 32x32", "32x16", "resize"), id="ok-not-square"),
    pytest.param(lambda: torch.randint(0, 255, (2, 3, 32, 32)), ("must be floating point", "torch.int64",
                                                                  "x / 255"), id="unclear-int64-pixels"),
    pytest.param(lambda: torch.zeros(2, 3, 32, 32, dtype=torch.bool), ("must be floating point", "torch.bool"),
                 id="ok-bool-pixels"),
    pytest.param(lambda: torch.zeros(2, 3, 32, 32, dtype=torch.complex64), ("must be floating point", "complex64"),
                 id="ok-complex-pixels"),
    pytest.param(lambda: np.zeros((2, 3, 32, 32), np.float32), ("got ndarray", "torch.from_numpy"),
                 id="unclear-numpy-array"),
    pytest.param(lambda: [images(1)[0], images(1)[0]], ("got list", "torch.stack"), id="unclear-list-of-images"),
    pytest.param(lambda: _PILImage(), ("got Image", "preprocess"), id="unclear-pil-image"),
]


@pytest.mark.parametrize("make, words", IMAGE_CASES)
def test_bad_images_and_videos(prompted, make, words):
    with refused(ShapeError, *words):
        prompted(make())


@pytest.mark.parametrize("layout, x, words", [
    pytest.param("BTHWC", images(2, frames=4), ("layout='BTHWC' is unknown", "BTCHW", "BCTHW"),
                 id="new-unknown-layout"),
    pytest.param("BCTHW", images(2, frames=4), ("layout='BCTHW' but dim 1 of the videos is 4, not 3",),
                 id="new-bcthw-without-channels-at-dim-1"),
])
def test_wrong_layout_argument(prompted, layout, x, words):
    with refused((ConfigError, ShapeError), *words):
        prompted(x, layout=layout)


def test_new_bcthw_layout_reads_channels_first_videos_right(prompted):
    frames_first = images(2, frames=3)
    expected = prompted.encode_image(frames_first, layout="BTCHW")
    torch.testing.assert_close(prompted.encode_image(frames_first.transpose(1, 2), layout="BCTHW"), expected)
    eight = images(2, frames=8)
    torch.testing.assert_close(prompted.encode_image(eight.transpose(1, 2), layout="BCTHW"),
                               prompted.encode_image(eight), atol=1e-6, rtol=0)


def test_new_video_layout_set_once_on_the_module(model):
    prompted = pp.wrap(model, NAMES, n_ctx=2, video_layout="BTCHW")
    try:
        x = images(2, frames=3)
        torch.testing.assert_close(prompted(x), prompted(x, layout="BTCHW"))
        prompted.video_layout = None
        with refused(ShapeError, "ambiguous"):
            prompted(x)
    finally:
        prompted.eject()


def test_new_video_layout_option_is_typed(model):
    with refused(ConfigError, "video_layout='frames-first'", "'BTCHW' or 'BCTHW' or None"):
        pp.wrap(model, NAMES, n_ctx=2, video_layout="frames-first")


def test_new_check_range_false_lets_intended_values_through(prompted):
    x = images(2) * 30
    assert torch.isfinite(prompted(x, check_range=False)).all()
    prompted.check_range = False
    assert torch.isfinite(prompted(x)).all()
    with refused(ShapeError, *NAN):  # NaN is refused whatever check_range says
        prompted(_with(x, (0, 0, 0, 0), float("nan")))


def test_ok_check_range_bound_is_generous_for_normalised_pixels(prompted):
    white = (torch.ones(2, 3, 32, 32) - 0.4578) / 0.2613  # the largest normalised CLIP pixel, about 2.1
    assert torch.isfinite(prompted(white)).all()
    assert torch.isfinite(prompted(torch.full((1, 3, 32, 32), PIXEL_BOUND))).all()


def test_new_check_range_option_is_typed(model):
    with refused(ConfigError, "check_range='no'", "expected bool"):
        pp.wrap(model, NAMES, n_ctx=2, check_range="no")


def test_silent_0_255_through_dpc_and_the_anchor_loss(model):
    dpc = pp.wrap(model, NAMES, method="dpc", base_classes=NAMES[:2], n_ctx=2, n_visual_ctx=2)
    try:
        with refused(ShapeError, *RANGE):
            dpc(torch.rand(2, 3, 32, 32) * 255)
        with refused(ShapeError, *RANGE):
            pp.AttributeAnchorLoss(bank=["else"], bank_side="prompted").from_model(dpc.target,
                                                                                  torch.rand(1, 2, 3, 32, 32) * 255)
    finally:
        dpc.eject()


def test_unclear_nan_images_into_the_hard_negative_objective(model):
    dpc = pp.wrap(model, NAMES, method="dpc", base_classes=NAMES, n_ctx=2)
    try:
        objective = pp.HardNegativeOptimizer(dpc, [(images(1)[0], c) for c in range(3)], top_k=1)
        with refused(ShapeError, *NAN):
            objective(_with(images(2), (0, 0, 0, 0), float("nan")), torch.tensor([0, 1]))
    finally:
        dpc.eject()


def test_ok_encode_image_after_eject(model):
    prompted = pp.wrap(model, NAMES, n_ctx=2)
    prompted.eject()
    with refused(PromptPluginsError, "was ejected", "wrap the model again"):
        prompted.encode_image(images(1))


# ---------------------------------------------------------------------------- properties
SIZE = 4


@settings(max_examples=200, deadline=None)
@given(dims=st.lists(st.sampled_from([0, 1, 2, 3, 4, 5]), min_size=2, max_size=6),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.float64, torch.bfloat16, torch.uint8, torch.int64,
                              torch.bool]),
       layout=st.sampled_from([None, "BTCHW", "BCTHW"]),
       scale=st.sampled_from([1.0, 255.0]), poison=st.sampled_from([None, float("nan"), float("inf")]))
def test_property_check_images_accepts_only_what_it_can_read_and_never_guesses(dims, dtype, layout, scale, poison):
    g = torch.Generator().manual_seed(len(dims))
    x = (torch.rand(dims, generator=g) * scale).to(dtype)
    if poison is not None and x.numel() and x.is_floating_point():
        x.view(-1)[0] = poison
    try:
        frames, flat = check_images(x, SIZE, layout=layout)
    except (ShapeError, ConfigError):
        return
    assert x.is_floating_point() and x.numel() > 0 and tuple(x.shape[-2:]) == (SIZE, SIZE)
    assert bool(torch.isfinite(x).all()) and float(x.abs().max()) <= PIXEL_BOUND
    if x.dim() == 4:
        assert frames is None and x.shape[1] == 3 and flat is x
        return
    if layout == "BCTHW":
        assert x.shape[1] == 3 and torch.equal(flat, x.transpose(1, 2).flatten(0, 1))
    else:
        assert x.shape[2] == 3 and torch.equal(flat, x.flatten(0, 1))
        assert layout == "BTCHW" or x.shape[1] != 3  # (B, 3, 3, H, W) only with the layout said
    assert frames == x.shape[2 if layout == "BCTHW" else 1]
