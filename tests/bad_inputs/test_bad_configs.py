"""Bad options and bad values in ``adapter_config.json`` (issue 15): every one is checked against its typed config
and reported once, naming the field, the value, the type expected and the fix; the adapter on disk is untouched.
Ids start with the kind of behaviour each case had before (``bad_cases``)."""
import json

import pytest
import torch

import prompt_plugins as pp
from prompt_plugins.checkpoint import CONFIG_NAME
from prompt_plugins.errors import CheckpointError, ClassNameError, ConfigError
from bad_cases import refused, tree

NAMES = ["red circle", "blue square", "green triangle"]


# ---------------------------------------------------------------------------- wrap options
@pytest.mark.parametrize("options, words", [
    pytest.param(dict(template="{} {}."), ("template '{} {}.'", "exactly one '{}'", "found 2 format field(s)"),
                 id="crash-template-with-two-slots"),
    pytest.param(dict(template="a {0}."), ("template 'a {0}.'", "'{}'"), id="ok-template-positional-field"),
    pytest.param(dict(template="a {name}."), ("template 'a {name}.'", "'{}'"), id="ok-template-named-field"),
    pytest.param(dict(template="a {:>9}."), ("template 'a {:>9}.'", "'{}'"), id="ok-template-format-spec"),
    pytest.param(dict(template="a { {}."), ("not a valid template", "'{{'"), id="crash-template-lone-brace"),
    pytest.param(dict(template="a photo."), ("template 'a photo.'", "'{}'"), id="ok-template-without-slot"),
    pytest.param(dict(zero_shot_template="{}, {}"), ("zero_shot_template", "exactly one"),
                 id="crash-zero-shot-template-with-two-slots"),
    pytest.param(dict(template=5), ("template=5 (int) is not valid", "expected str"), id="ok-template-not-str"),
    pytest.param(dict(init_std=-1), ("init_std=-1.0 must be a finite number >= 0",), id="ok-negative-init-std"),
    pytest.param(dict(init_std=float("nan")), ("init_std=nan",), id="ok-nan-init-std"),
    pytest.param(dict(n_ctx="4"), ("n_ctx='4' (str) is not valid", "write 4 without quotes"), id="unclear-n-ctx-string"),
    pytest.param(dict(n_ctx=True), ("n_ctx=True (bool) is not valid", "expected int"), id="ok-n-ctx-bool"),
    pytest.param(dict(n_ctx=2.0), ("n_ctx=2.0 (float) is not valid",), id="ok-n-ctx-float"),
    pytest.param(dict(depth=0), ("depth=0 is out of range",), id="ok-depth-zero"),
    pytest.param(dict(depth=9), ("depth=9 is out of range", "[1, 3]"), id="ok-depth-beyond-the-tower"),
    pytest.param(dict(class_specific="false"), ("class_specific='false'", "write false without quotes"),
                 id="unclear-class-specific-string"),
    pytest.param(dict(n_ctx=2, ctx_init="a photo of a"), ("is 4 tokens but n_ctx=2",), id="ok-ctx-init-length"),
])
def test_bad_wrap_options(model, options, words):
    with refused(ConfigError, *words):
        pp.wrap(model, NAMES, **{"n_ctx": 2, **options})


@pytest.mark.parametrize("kwargs, error, words", [
    pytest.param(dict(foo=1), ConfigError, ("unknown option(s) ['foo']", "allowed:"), id="ok-unknown-load-keyword"),
    pytest.param(dict(template="{}{}"), ConfigError, ("exactly one '{}'",), id="crash-load-template-two-slots"),
    pytest.param(dict(allow_other_backend="yes"), ConfigError, ("allow_other_backend must be True or False",),
                 id="new-allow-other-backend-not-bool"),
])
def test_bad_from_pretrained_keywords(model, tmp_path, kwargs, error, words):
    prompted = pp.wrap(model, NAMES, n_ctx=2)
    pp.save_pretrained(prompted, tmp_path)
    prompted.eject()
    with refused(error, *words):
        pp.from_pretrained(model, tmp_path, **kwargs)


# ---------------------------------------------------------------------------- adapter_config.json
@pytest.fixture(scope="module")
def coop_dir(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("coop")
    prompted = pp.wrap(model, NAMES, n_ctx=2)
    pp.save_pretrained(prompted, path)
    prompted.eject()
    return path


@pytest.fixture(scope="module")
def dpc_dir(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("dpc")
    dpc = pp.wrap(model, NAMES, method="dpc", base_classes=NAMES[:2], n_ctx=2)
    pp.save_pretrained(dpc, path)
    dpc.eject()
    return path


def _edited(src, dst, edit):
    dst.mkdir(exist_ok=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    cfg = json.loads((dst / CONFIG_NAME).read_text())
    edit(cfg)
    (dst / CONFIG_NAME).write_text(json.dumps(cfg))
    return dst


def _set(section, key, value):
    def edit(cfg):
        (cfg if section is None else cfg[section])[key] = value
    return edit


CONFIG_CASES = [
    pytest.param(_set("prompt", "n_ctx", "4"), ConfigError, ("'prompt': n_ctx='4' (str) is not valid",
                                                             "write 4 without quotes"), id="unclear-n-ctx-string"),
    pytest.param(_set("prompt", "class_specific", "false"), ConfigError, ("class_specific='false'",
                                                                          "write false without quotes"),
                 id="unclear-class-specific-string"),
    pytest.param(_set("backbone", "text_width", "64"), ConfigError, ("backbone.text_width='64' (str)",
                                                                     "expected int"),
                 id="unclear-backbone-width-string"),
    pytest.param(_set("backbone", "vision_layers", True), ConfigError, ("backbone.vision_layers=True (bool)",),
                 id="unclear-backbone-layers-bool"),
    pytest.param(_set("backbone", "backend", 5), ConfigError, ("backbone.backend=5 (int)", "expected str"),
                 id="silent-backbone-backend-int"),
    pytest.param(_set(None, "backbone", [64]), ConfigError, ("backbone=[64] (list) is not valid",),
                 id="ok-backbone-not-an-object"),
    pytest.param(_set(None, "template", "{} {}"), ConfigError, ("template '{} {}'", "exactly one"),
                 id="crash-saved-template-two-slots"),
    pytest.param(_set(None, "format_version", True), ConfigError, ("format_version=True (bool) is not valid",),
                 id="ok-format-version-bool"),
    pytest.param(_set(None, "format_version", "1"), CheckpointError, ("no integer format_version",),
                 id="ok-format-version-string"),
    pytest.param(_set(None, "method", 5), ConfigError, ("has no 'method' string (got 5)",),
                 id="unclear-method-not-str"),
    pytest.param(_set(None, "prompt", []), ConfigError, ("prompt=[] (list) is not valid",),
                 id="ok-prompt-section-a-list"),
    pytest.param(_set(None, "classnames", "abc"), ConfigError, ("classnames='abc' (str) is not valid",),
                 id="ok-saved-classnames-a-string"),
    pytest.param(_set(None, "classnames", ["Cat", "cat", "dog"]), ClassNameError, ("differ only by case",),
                 id="silent-saved-classnames-case-duplicates"),
    pytest.param(_set("prompt", "depth", 0), ConfigError, ("depth=0 is out of range",), id="ok-saved-depth-zero"),
    pytest.param(_set("prompt", "shiny", 1), ConfigError, ("unknown key(s) ['shiny']",), id="ok-unknown-prompt-key"),
]


@pytest.mark.parametrize("edit, error, words", CONFIG_CASES)
def test_bad_values_in_adapter_config(model, coop_dir, tmp_path, edit, error, words):
    bad = _edited(coop_dir, tmp_path / "bad", lambda cfg: (cfg.pop("weights_sha256"), edit(cfg)))
    before = tree(bad)
    with refused(error, *words):
        pp.from_pretrained(model, bad)
    assert tree(bad) == before  # a failed load writes nothing


@pytest.mark.parametrize("edit, error, words", [
    pytest.param(_set("dpc", "weight_base", "0.2"), ConfigError, ("weight_base='0.2' (str)", "write 0.2 without"),
                 id="unclear-dpc-weight-string"),
    pytest.param(_set("dpc", "mode", "fast"), ConfigError, ("mode='fast'", "'released' or 'converse' or 'paper'"),
                 id="ok-dpc-unknown-mode"),
    pytest.param(_set("dpc", "weight_base", float("nan")), ConfigError, ("weight_base must be a finite number",),
                 id="ok-dpc-weight-nan"),
    pytest.param(_set("dpc", "tensors", "ctx"), ConfigError, ("tensors='ctx' (str) is not valid",),
                 id="ok-dpc-tensors-a-string"),
    pytest.param(_set("inner", "template", "{}{}"), ConfigError, ("'inner'", "exactly one"),
                 id="crash-dpc-inner-template"),
])
def test_bad_values_in_a_dpc_config(model, dpc_dir, tmp_path, edit, error, words):
    bad = _edited(dpc_dir, tmp_path / "bad", lambda cfg: (cfg.pop("weights_sha256"), edit(cfg)))
    with refused(error, *words):
        pp.from_pretrained(model, bad)


def test_unclear_backbone_message_never_contradicts_itself(model, coop_dir, tmp_path):
    bad = _edited(coop_dir, tmp_path / "bad", lambda cfg: (cfg.pop("weights_sha256"),
                                                            _set("backbone", "text_width", "64")(cfg)))
    with pytest.raises(ConfigError) as info:
        pp.from_pretrained(model, bad)
    assert "checkpoint 64 vs model 64" not in str(info.value)


# ---------------------------------------------------------------------------- losses and objectives
@pytest.mark.parametrize("kwargs, words", [
    pytest.param(dict(weight=float("nan")), ("weight must be a finite number", "nan"), id="silent-anchor-weight-nan"),
    pytest.param(dict(weight=float("inf")), ("weight must be a finite number",), id="silent-anchor-weight-inf"),
    pytest.param(dict(weight=-0.5), ("weight=-0.5 is out of range", ">= 0.0"), id="silent-anchor-weight-negative"),
    pytest.param(dict(weight="1"), ("weight must be a finite number, got str",), id="crash-anchor-weight-string"),
    pytest.param(dict(weight=True), ("weight must be a finite number, got bool",), id="silent-anchor-weight-bool"),
    pytest.param(dict(alpha=float("nan")), ("alpha must be a finite number",), id="silent-anchor-alpha-nan"),
    pytest.param(dict(scale=0), ("scale=0 is out of range", "> 0.0"), id="silent-anchor-scale-zero"),
    pytest.param(dict(scale=-100.0), ("scale=-100.0 is out of range",), id="silent-anchor-scale-negative"),
    pytest.param(dict(frozen_template="{} {}"), ("frozen_template", "exactly one"),
                 id="crash-anchor-template-two-slots"),
])
def test_bad_anchor_loss_options(kwargs, words):
    with refused(ConfigError, *words):
        pp.AttributeAnchorLoss(**kwargs)


@pytest.mark.parametrize("scale, words", [
    pytest.param(float("nan"), ("scale=nan must be one finite number > 0",), id="unclear-info-nce-scale-nan"),
    pytest.param(-1.0, ("scale=-1.0",), id="silent-info-nce-scale-negative"),
    pytest.param(torch.tensor([1.0, 2.0]), ("must be one finite number",), id="crash-info-nce-scale-vector"),
    pytest.param("100", ("scale='100'",), id="crash-info-nce-scale-string"),
])
def test_bad_info_nce_scale(scale, words):
    feats = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    with refused(ConfigError, *words):
        pp.symmetric_info_nce(feats, feats, scale)
