"""Issue 22 §1: a prompt-learning fork's CLIP is accepted when its blocks inject nothing, refused when they do.

Two kinds of test:

* always running: the fork blocks of ``fork_blocks.py``, small subclasses of the real OpenAI / open_clip
  ``ResidualAttentionBlock`` written for these tests that reproduce the forks' behaviour (class renamed with
  prompts off; a ``VPT_shallow`` that replaces tokens; MaPLe's list input);
* the real classes: ViFi-CLIP's and MaPLe/IVLP's own ``clip/model.py``, read at test time from a clone or
  git mirror of their repositories (``VIFI_CLIP_REPO``, ``MAPLE_REPO``; default: the mirrors under
  ``/work/.mirror``), written to ``tmp_path`` and imported from there, and the tiny model built with their own
  ``build_model(state_dict, design_details)``. Without the repository these tests skip, naming the variable.
  The project never contains that code.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import prompt_plugins as pp
from prompt_plugins.backends import probe as probe_module
from prompt_plugins.backends import resolve
from prompt_plugins.errors import UnsupportedModelError
from fork_blocks import injecting, into_fork, maple_like, prompt_free
from tiny_models import WIDTH, images, make_model

NAMES = ["jump", "ride a horse", "play the violin"]
ZERO_SHOT = [f"a photo of a {c}." for c in NAMES]  # the default zero_shot_template
HARD = torch.randn(4, WIDTH, generator=torch.Generator().manual_seed(5))  # GA2's hard prompt, as a tensor


def _official_logits(model, x: torch.Tensor) -> torch.Tensor:
    """The fork's own zero-shot logits: its CLIP.forward(image, tokenized text) (its encode_image / encode_text)."""
    import clip

    with torch.no_grad():
        return model(x, clip.tokenize(ZERO_SHOT))[0].float()


def _check_ga2_disabled_and_training(model, atol: float) -> None:
    """GA2 wraps ``model``; ``disabled()`` logits equal the fork's own zero-shot logits; a GA2 step trains."""
    x = images(2)
    expected = _official_logits(model, x)
    prompted = pp.wrap(model, NAMES, method="ga2", hard_prompt=HARD)
    with prompted.disabled(), torch.no_grad():
        ours = prompted(x)
    torch.testing.assert_close(ours, expected, atol=atol, rtol=0)
    video = images(2, frames=4)
    loss = F.cross_entropy(prompted(video), torch.tensor([0, 2]))
    loss.backward()
    trainable = prompted.trainable_parameters()
    assert trainable and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
    assert any(p.grad.abs().sum() > 0 for p in trainable)


def _vifi_finetuning(model) -> None:
    """ViFi-CLIP's fine-tuning configuration: every block of its class, none with a prompt."""
    into_fork(model.transformer.resblocks, prompt_free(), text_layer=True)
    into_fork(model.visual.transformer.resblocks, prompt_free(), text_layer=False)


# ---------------------------------------------------------------- always running: test-time fork blocks
@pytest.mark.parametrize("fp16", [False, True])
def test_fork_blocks_with_prompts_off_are_wrapped_for_ga2(fp16):
    """The regression: ViFi's block class with prompts off was refused by its class name. fp16 as
    ``load_clip_to_cpu`` returns it, fp32 as ``returnCLIP`` leaves it (``model.float()``)."""
    model = make_model("openai", fp16=fp16)
    _vifi_finetuning(model)
    _check_ga2_disabled_and_training(model, atol=2e-2 if fp16 else 1e-5)  # logits: 100 x cosine, fp16 off by ~3e-3


def test_an_unused_vpt_shallow_is_decided_by_behaviour():
    """A ``VPT_shallow`` the block's forward never reads injects nothing: accepted."""
    model = make_model("openai")
    into_fork(model.transformer.resblocks, prompt_free(), text_layer=True, n_ctx=2, prompt_until=3)
    assert resolve(model).name == "openai"


@pytest.mark.parametrize("tower", ["text", "visual"])
def test_fork_blocks_that_inject_their_prompts_are_refused(tower):
    model = make_model("openai")
    blocks = model.transformer.resblocks if tower == "text" else model.visual.transformer.resblocks
    into_fork(blocks, injecting(), text_layer=tower == "text", n_ctx=2, prompt_until=3)
    where = "transformer" if tower == "text" else "visual.transformer"
    with pytest.raises(UnsupportedModelError, match=rf"parameter '{where}\.resblocks\.1\.VPT_shallow'.*disabled\(\)"):
        pp.wrap(model, NAMES, method="ga2", hard_prompt=HARD)


def test_a_fork_computing_something_else_without_prompts_is_refused():
    """No prompt parameter, another computation (a text block without its causal mask): the class message."""
    model = make_model("openai")
    into_fork(model.transformer.resblocks, prompt_free("NonCausalBlock"), text_layer=True)
    for block in model.transformer.resblocks:
        block.attn_mask = None
    with pytest.raises(UnsupportedModelError, match=r"class NonCausalBlock at 'transformer\.resblocks\.0'.*probe"):
        resolve(model)


def test_maple_list_input_is_refused_not_a_raw_exception():
    model = make_model("openai")
    into_fork(model.transformer.resblocks, maple_like(), text_layer=True)
    with pytest.raises(UnsupportedModelError, match=r"class ResidualAttentionBlock_MaPLe .*takes other inputs"):
        resolve(model)


def test_one_probe_per_kind_of_block():
    model = make_model("openai")
    text, visual = prompt_free("TextFork"), prompt_free("VisualFork")
    into_fork(model.transformer.resblocks, text, text_layer=True)
    into_fork(model.visual.transformer.resblocks, visual, text_layer=False)
    resolve(model)
    assert (text.calls, visual.calls) == (1, 1)  # 3 blocks each, one probe per tower
    ivlp = injecting()
    model = make_model("openai")
    into_fork(model.transformer.resblocks, ivlp, text_layer=True, n_ctx=2, prompt_until=3)
    with pytest.raises(UnsupportedModelError):
        resolve(model)
    assert ivlp.calls == 2  # block 0 (no prompt) and block 1 (VPT_shallow) are two kinds; refused at 1


def test_the_probe_leaves_the_model_untouched():
    model = make_model("openai", fp16=True)
    _vifi_finetuning(model)
    model.train()
    model.visual.transformer.resblocks[1].eval()
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    masks = [b.attn_mask for b in model.transformer.resblocks]
    attrs = [sorted(vars(m)) for m in model.modules()]
    rng = torch.get_rng_state()
    resolve(model)
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(b.attn_mask is m and m.dtype == torch.float32 for b, m in zip(model.transformer.resblocks, masks))
    assert [sorted(vars(m)) for m in model.modules()] == attrs
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_a_dtype_the_plain_computation_cannot_run_is_probed_as_a_float32_copy(monkeypatch):
    real = probe_module.run_block

    def no_half(parts, x, causal=True):
        if x.dtype == torch.float16:
            raise RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'')
        return real(parts, x, causal)

    monkeypatch.setattr(probe_module, "run_block", no_half)
    model = make_model("openai", fp16=True)
    _vifi_finetuning(model)
    assert resolve(model).dtype == torch.float16
    assert model.transformer.resblocks[0].attn.in_proj_weight.dtype == torch.float16  # the copy was probed
    model = make_model("openai", fp16=True)
    into_fork(model.transformer.resblocks, injecting(), text_layer=True, n_ctx=2, prompt_until=3)
    with pytest.raises(UnsupportedModelError, match="VPT_shallow"):
        resolve(model)


def test_open_clip_fork_blocks_are_probed_in_their_layout_with_the_mask_passed():
    """open_clip blocks run NLD and get the causal mask as ``attn_mask=``: a renamed block is plain."""
    from open_clip.transformer import ResidualAttentionBlock

    model = make_model("open_clip")
    cls = prompt_free("OpenClipFork", base=ResidualAttentionBlock)
    into_fork(model.transformer.resblocks, cls, text_layer=True)
    into_fork(model.visual.transformer.resblocks, cls, text_layer=False)
    _ = resolve(model)
    assert cls.calls == 2
    x = images(2)
    prompted = pp.wrap(model, NAMES, method="ga2", hard_prompt=HARD)
    with prompted.disabled(), torch.no_grad():
        img = prompted.encode_image(x)
    torch.testing.assert_close(img, F.normalize(model.encode_image(x), dim=-1), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- the forks' real classes
def _fork_source(variable: str, mirror: str, what: str) -> str:
    """``clip/model.py`` of the repository at $``variable`` (a clone or a bare git mirror), else ``mirror``."""
    repo = Path(os.environ.get(variable, mirror))
    if (repo / "clip" / "model.py").is_file():
        return (repo / "clip" / "model.py").read_text()
    if repo.is_dir():
        shown = subprocess.run(["git", "-C", str(repo), "show", "HEAD:clip/model.py"], capture_output=True, text=True)
        if shown.returncode == 0:
            return shown.stdout
    pytest.skip(f"{what}'s clip/model.py not found at {repo}: set {variable} to a clone of its repository")


def _import_fork(tmp_path: Path, source: str, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"_test_fork_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def vifi(tmp_path):
    source = _fork_source("VIFI_CLIP_REPO", "/work/.mirror/muzairkhattak+ViFi-CLIP/repo",
                          "ViFi-CLIP (github.com/muzairkhattak/ViFi-CLIP)")
    return _import_fork(tmp_path, source, "vifi_clip_model")


@pytest.fixture
def maple(tmp_path):
    source = _fork_source("MAPLE_REPO", "/work/.mirror/muzairkhattak+multimodal-prompt-learning/repo",
                          "MaPLe (github.com/muzairkhattak/multimodal-prompt-learning)")
    return _import_fork(tmp_path, source, "maple_clip_model")


def _build(fork, **design):
    """The fork's own ``build_model`` on a tiny OpenAI CLIP's state dict (fp16, eval, as its loader returns)."""
    details = {"trainer": "ViFi_CLIP", "vision_depth": 0, "language_depth": 1, "vision_ctx": 0, "language_ctx": 0}
    details.update(design)
    return fork.build_model(make_model("openai").state_dict(), details)


@pytest.mark.parametrize("fp32", [False, True])
def test_real_vifi_clip_finetuning_model_is_wrapped_for_ga2(vifi, fp32):
    """ViFi-CLIP's default config (PROMPT_DEPTH_VISION 0, PROMPT_DEPTH_TEXT 1, N_CTX 0), as
    ``load_clip_to_cpu`` builds it (fp16) and as ``returnCLIP`` leaves it (``model.float()``)."""
    model = _build(vifi)
    assert type(model.transformer.resblocks[0]).__name__ == "ResidualAttentionBlock_ViFi_CLIP"
    if fp32:
        model.float()
    _check_ga2_disabled_and_training(model, atol=1e-5 if fp32 else 2e-2)


def test_real_vifi_clip_prompting_model_is_refused(vifi):
    released = _build(vifi, vision_depth=9, language_depth=9, vision_ctx=16, language_ctx=16)
    with pytest.raises(UnsupportedModelError, match=r"parameter 'visual\.VPT'"):
        pp.wrap(released, NAMES, method="ga2", hard_prompt=HARD)
    text_only = _build(vifi, language_depth=3, language_ctx=2)  # deep text prompts in blocks 1 and 2
    with pytest.raises(UnsupportedModelError, match=r"parameter 'transformer\.resblocks\.1\.VPT_shallow'"):
        pp.wrap(text_only, NAMES, method="ga2", hard_prompt=HARD)


def test_real_maple_and_ivlp_blocks_are_decided_by_behaviour(maple):
    maple_model = _build(maple, trainer="MaPLe", language_depth=0, maple_length=2)
    with pytest.raises(UnsupportedModelError,
                       match=r"class ResidualAttentionBlock_MaPLe at 'visual\.transformer\.resblocks\.0'"):
        resolve(maple_model)
    ivlp = _build(maple, trainer="IVLP", language_depth=3, language_ctx=2)
    with pytest.raises(UnsupportedModelError, match=r"parameter 'transformer\.resblocks\.1\.VPT_shallow'"):
        resolve(ivlp)
    off = _build(maple, trainer="IVLP").float()  # IVLP's blocks with prompts off: plain
    assert type(off.visual.transformer.resblocks[0]).__name__ == "ResidualAttentionBlock_IVLP"
    _check_ga2_disabled_and_training(off, atol=1e-5)
