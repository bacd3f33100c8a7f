"""Bad labels and datasets for DPC's hard-negative objective, models that cannot be prompted, and the state
``eject()`` leaves (issue 15). Ids start with the kind of behaviour each case had before (``bad_cases``)."""
import json

import pytest
import torch
from torch.utils.data import TensorDataset

import prompt_plugins as pp
from prompt_plugins.errors import ClassNameError, ConfigError, ShapeError, UnsupportedModelError
from bad_cases import refused
from tiny_models import images, make_model

NAMES = ["red circle", "blue square", "green triangle", "yellow star"]
BASE = NAMES[:3]


@pytest.fixture
def dpc(model):
    wrapper = pp.wrap(model, NAMES, method="dpc", base_classes=BASE, n_ctx=2)
    yield wrapper
    wrapper.eject()


def _dataset():
    return [(images(1, seed=c)[0], c) for c in range(3) for _ in range(2)]


@pytest.mark.parametrize("labels, error, words", [
    pytest.param(torch.tensor([0.0, 1.7]), ShapeError, ("integer class indices", "torch.float32",
                                                        "would truncate them silently"), id="silent-float-labels"),
    pytest.param(torch.tensor([True, False]), ShapeError, ("integer class indices", "torch.bool"),
                 id="silent-bool-labels"),
    pytest.param(torch.tensor([0, 3]), ClassNameError, ("labels [3] are not among the base classes [0, 1, 2]",
                                                        "base-class indices"), id="silent-new-class-label"),
    pytest.param(torch.tensor([0, 9]), ClassNameError, ("labels [9] are not among",), id="unclear-label-out-of-range"),
    pytest.param(torch.tensor([-1, 0]), ClassNameError, ("labels [-1] are not among",), id="unclear-negative-label"),
    pytest.param([0, 1], ShapeError, ("labels must be a torch.Tensor", "got list", "torch.tensor(labels)"),
                 id="crash-labels-a-list"),
    pytest.param(torch.tensor([[0], [1]]), ShapeError, ("labels must have shape (B,) = (2,)", "got (2, 1)"),
                 id="unclear-labels-2d"),
    pytest.param(torch.tensor([0, 1, 2]), ShapeError, ("labels must have shape (B,) = (2,)", "got (3,)"),
                 id="unclear-labels-longer-than-the-batch"),
])
def test_bad_labels_for_the_hard_negative_objective(dpc, labels, error, words):
    objective = pp.HardNegativeOptimizer(dpc, _dataset(), top_k=1)
    with refused(error, *words):
        objective(images(2), labels)


def test_ok_images_not_a_tensor_for_the_objective(dpc):
    with refused(ShapeError, "images must be a torch.Tensor, got list"):
        pp.HardNegativeOptimizer(dpc, _dataset(), top_k=1)([images(1)[0]], torch.tensor([0]))


@pytest.mark.parametrize("kwargs, error, words", [
    pytest.param(dict(dataset=[]), ConfigError, ("dataset (or class_index) is empty", "without items"),
                 id="silent-empty-dataset"),
    pytest.param(dict(dataset=None, class_index={}), ConfigError, ("is empty",), id="silent-empty-class-index"),
    pytest.param(dict(dataset=[(images(1)[0], 1.5)]), ConfigError, ("dataset item [1]: label 1.5 (float)",
                                                                   "not a class index"),
                 id="silent-float-label-in-the-dataset"),
    pytest.param(dict(dataset=TensorDataset(images(2), torch.tensor([0.0, 1.0]))), ConfigError,
                 ("label", "(Tensor) is not a class index"), id="silent-float-tensor-labels-in-the-dataset"),
    pytest.param(dict(dataset=_dataset(), labels=[0, 1, 2, 0, 1, -2]), ConfigError, ("labels[5]: label -2",),
                 id="silent-negative-label-in-labels"),
    pytest.param(dict(dataset=_dataset(), labels=[True] * 6), ConfigError, ("labels[0]: label True (bool)",),
                 id="silent-bool-labels-in-labels"),
    pytest.param(dict(dataset=_dataset(), class_index={"red circle": [0]}), ConfigError,
                 ("class_index: label 'red circle' (str)",), id="crash-class-index-keyed-by-name"),
    pytest.param(dict(dataset=_dataset(), top_k=0), ConfigError, ("top_k=0 is out of range",), id="ok-top-k-zero"),
    pytest.param(dict(dataset=[{"pixels": 1}]), ConfigError, ("cannot read a label",), id="ok-unreadable-items"),
])
def test_bad_datasets_for_the_hard_negative_objective(dpc, kwargs, error, words):
    with refused(error, *words):
        pp.HardNegativeOptimizer(dpc, **{"top_k": 1, **kwargs})


def test_silent_candidate_classes_outside_the_model(dpc):
    objective = pp.HardNegativeOptimizer(dpc, _dataset(), top_k=1, classes=[0, 1, 7])
    with refused(ClassNameError, "classes=[0, 1, 7] holds indices outside the model's 4 classes"):
        objective(images(2), torch.tensor([0, 1]))


def test_ok_integral_labels_of_every_integer_dtype_train(dpc):
    objective = pp.HardNegativeOptimizer(dpc, _dataset(), top_k=1)
    for dtype in (torch.int64, torch.int32, torch.uint8):
        assert torch.isfinite(objective(images(2), torch.tensor([0, 2], dtype=dtype)))


# ---------------------------------------------------------------------------- models
def test_crash_model_on_the_meta_device():
    with torch.device("meta"):
        meta = make_model("openai")
    with refused(UnsupportedModelError, "on the meta device", "to_empty", "load_state_dict"):
        pp.wrap(meta, NAMES, n_ctx=2)


# ---------------------------------------------------------------------------- eject
def _state(module):
    return {
        "training": {n: m.training for n, m in module.named_modules()},
        "requires_grad": {n: p.requires_grad for n, p in module.named_parameters()},
        "hooks": {n: (len(m._forward_pre_hooks), len(m._forward_hooks), len(m._backward_hooks))
                  for n, m in module.named_modules()},
        "buffers": {n: (b.data_ptr(), b.dtype, b.clone()) for n, b in module.named_buffers()},
        "params": {n: (p.data_ptr(), p.dtype, p.device) for n, p in module.named_parameters()},
    }


def _assert_same(before, after):
    for key in ("training", "requires_grad", "hooks", "params"):
        assert before[key] == after[key], key
    assert before["buffers"].keys() == after["buffers"].keys()
    for n, (ptr, dtype, value) in before["buffers"].items():
        assert after["buffers"][n][:2] == (ptr, dtype) and torch.equal(after["buffers"][n][2], value), n


@pytest.mark.parametrize("backend", ["openai", "open_clip", "hf"])
@pytest.mark.parametrize("method", [pytest.param("coop", id="safety-eject-coop"),
                                    pytest.param("dpc", id="safety-eject-dpc")])
def test_eject_restores_the_exact_module_state(backend, method):
    model = make_model(backend)  # eval mode, as the tiny models are built
    model.visual.requires_grad_(False) if backend != "hf" else model.vision_model.requires_grad_(False)
    before = _state(model)
    wrapper = pp.wrap(model, NAMES, method=method, n_ctx=2, n_visual_ctx=2, depth=2,
                      **({"base_classes": BASE} if method == "dpc" else {}))
    wrapper.train()  # reaches the model: it is a submodule
    assert model.training
    wrapper(images(2))
    assert wrapper.eject() is model
    _assert_same(before, _state(model))


def test_safety_eject_restores_train_mode_it_found(model):
    model.train()
    try:
        prompted = pp.wrap(model, NAMES, n_ctx=2)
        prompted.eval()
        assert prompted.eject().training
    finally:
        model.eval()


def test_safety_dpc_on_a_foreign_model_restores_its_flags():
    foreign = torch.nn.Sequential(torch.nn.Linear(4, 3))
    foreign[0].register_parameter("ctx", torch.nn.Parameter(torch.zeros(3)))
    foreign.eval()
    before = _state(foreign)
    dpc = pp.DualPromptWrapper(foreign)
    dpc.train()
    dpc.eject()
    _assert_same(before, _state(foreign))


def test_safety_a_failed_wrap_leaves_the_model_as_it_was():
    model = make_model("openai")
    before = _state(model)
    with refused(ClassNameError, "base class 'purple' is not in the class list") as info:
        pp.wrap(model, NAMES, method="dpc", base_classes=["purple"], n_ctx=2)
    assert info.traceback  # the half-built wrapper lives on in it: it must not hold the model
    _assert_same(before, _state(model))
    with refused(pp.PromptTooLongError, "more than the context length"):
        pp.wrap(model, ["word " * 80], n_ctx=2)
    _assert_same(before, _state(model))  # not left frozen
    pp.wrap(model, NAMES, n_ctx=2).eject()  # not refused as a second wrap


def test_safety_a_failed_load_leaves_the_model_as_it_was(tmp_path):
    from safetensors.torch import load_file, save_file

    model = make_model("openai")
    dpc = pp.wrap(model, NAMES, method="dpc", base_classes=BASE, n_ctx=2)
    pp.save_pretrained(dpc, tmp_path / "good")
    pp.save_pretrained(dpc, tmp_path / "bad")
    dpc.eject()
    state = load_file(tmp_path / "bad" / "adapter_model.safetensors")
    state["dpc.X.ctx"] = state["dpc.X.ctx"].int()
    save_file(state, tmp_path / "bad" / "adapter_model.safetensors")
    path = tmp_path / "bad" / "adapter_config.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "weights_sha256"}))
    before = _state(model)
    with refused(pp.CheckpointError, "has dtype torch.int32") as info:
        pp.from_pretrained(model, tmp_path / "bad")
    assert info.traceback
    _assert_same(before, _state(model))
    pp.from_pretrained(model, tmp_path / "good").eject()
