"""Bad class selectors and class names (issue 15): masks, float indices, single strings, sets, duplicates
that differ only by case or spaces. Ids start with the kind of behaviour each case had before (``bad_cases``)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import prompt_plugins as pp
from prompt_plugins.classes import class_indices
from prompt_plugins.errors import ClassNameError, ConfigError
from prompt_plugins.tokenization import check_classnames, normalize_classname
from bad_cases import NAMES, refused


# ---------------------------------------------------------------------------- selectors
SELECTOR_CASES = [
    pytest.param(torch.tensor([True, False]), ("boolean mask of shape (2,)", "one entry per class, shape (3,)"),
                 id="silent-bool-mask-of-wrong-length"),
    pytest.param(torch.tensor([0.7, 1.2]), ("integer indices", "torch.float32", "not class indices"),
                 id="silent-float-tensor"),
    pytest.param(torch.tensor([0.0, 1.0]), ("integer indices", "torch.float32"), id="silent-integral-float-tensor"),
    pytest.param([0.0, 2.0], ("all class names or all integer indices", "0.0 (float)"), id="silent-float-list"),
    pytest.param({0, 2}, ("is a set (its order is arbitrary)", "sorted(classes)"), id="silent-set-of-indices"),
    pytest.param({"red circle", "blue square"}, ("is a set",), id="silent-set-of-names"),
    pytest.param([0, 0], ("selects class(es) [0] more than once",), id="silent-repeated-index"),
    pytest.param(["red circle", "red circle"], ("more than once",), id="silent-repeated-name"),
    pytest.param(torch.tensor([[0, 1]]), ("1-D tensor of indices", "shape (1, 2)"), id="silent-2d-index-tensor"),
    pytest.param(torch.tensor(1), ("1-D tensor of indices", "shape ()"), id="silent-0d-index-tensor"),
    pytest.param("red circle", ("is a single str", "['red circle']"), id="unclear-single-string"),
    pytest.param(1, ("is a single int", "[1]"), id="crash-single-int"),
    pytest.param(True, ("is a single bool",), id="crash-single-bool"),
    pytest.param([0, "red circle"], ("all class names or all integer indices", "'red circle' (str)"),
                 id="crash-mixed-names-and-indices"),
    pytest.param([], ("selects no class", "classes=None"), id="unclear-empty-list"),
    pytest.param(torch.tensor([False, False, False]), ("selects no class",), id="unclear-all-false-mask"),
    pytest.param([-1], ("out of range for 3 classes",), id="ok-negative-index"),
    pytest.param(["Red Circle"], ("unknown class names ['Red Circle']", "did you mean 'red circle'?"),
                 id="unclear-name-in-other-case"),
    pytest.param(["purple"], ("unknown class names ['purple']", "known:"), id="ok-unknown-name"),
    pytest.param(torch.tensor([1 + 0j]), ("integer indices", "complex64"), id="silent-complex-tensor"),
]


@pytest.mark.parametrize("classes, words", SELECTOR_CASES)
def test_bad_class_selectors(prompted, classes, words):
    with refused(ClassNameError, *words):
        prompted.encode_text(classes)


@pytest.mark.parametrize("classes, expected", [
    pytest.param(torch.tensor([True, False, True]), [0, 2], id="silent-bool-mask-selects-the-true-classes"),
    pytest.param([False, True, True], [1, 2], id="silent-bool-list-selects-the-true-classes"),
    pytest.param(np.array([2, 0]), [2, 0], id="ok-numpy-indices"),
    pytest.param(np.array([True, False, True]), [0, 2], id="silent-numpy-mask"),
    pytest.param([np.int64(1)], [1], id="ok-numpy-int-in-a-list"),
    pytest.param(range(1, 3), [1, 2], id="ok-range"),
])
def test_selectors_that_now_select_what_they_say(prompted, classes, expected):
    torch.testing.assert_close(prompted.encode_text(classes), prompted.encode_text()[expected])


def test_silent_mask_selects_the_same_logits_as_indices(prompted):
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(prompted(x, torch.tensor([False, True, True])), prompted(x, [1, 2]))


def test_ok_names_on_a_foreign_model_without_class_names():
    with refused(ClassNameError, "class names of this model are unknown", "classnames=[...]"):
        class_indices(["a"], None)


# ---------------------------------------------------------------------------- class names
NAME_CASES = [
    pytest.param(set(NAMES), ("is a set", "order changes between runs", "sorted(classnames)"),
                 id="silent-set-of-class-names"),
    pytest.param(frozenset(NAMES), ("is a frozenset",), id="silent-frozenset-of-class-names"),
    pytest.param(["Cat", "cat"], ("'Cat' (#0) and 'cat' (#1) differ only by case, spaces or Unicode form",
                                  "identical prompts", "Rename one"), id="silent-names-differ-by-case"),
    pytest.param(["cat", "cat "], ("'cat' (#0) and 'cat ' (#1) differ only by",), id="silent-trailing-space"),
    pytest.param(["red  circle", "red circle"], ("differ only by",), id="silent-double-space"),
    pytest.param(["caf\u00e9", "cafe\u0301"], ("differ only by", "Unicode"), id="silent-unicode-forms"),
    pytest.param(["\tdog", "DOG\n"], ("differ only by",), id="silent-tab-newline-and-case"),
    pytest.param(None, ("must be a list of class-name strings, got NoneType",), id="crash-none"),
    pytest.param(5, ("must be a list of class-name strings, got int",), id="crash-int"),
    pytest.param({"dog": 1, "cat": 0}, ("got dict", "sorted(d, key=d.get)"), id="silent-dict-of-names"),
    pytest.param([b"cat", b"dog"], ("class name #0 is bytes",), id="ok-bytes-names"),
    pytest.param("cat", ("single string 'cat'",), id="ok-single-string"),
]


@pytest.mark.parametrize("names, words", NAME_CASES)
def test_bad_class_names_at_wrap(model, names, words):
    with refused(ClassNameError, *words):
        pp.wrap(model, names, n_ctx=2)


@pytest.mark.parametrize("names, words", [
    pytest.param("abc", ("single string 'abc'",), id="silent-from-pretrained-single-string"),
    pytest.param({"a", "b", "c"}, ("is a set",), id="silent-from-pretrained-set"),
    pytest.param(["A", "a", "b"], ("differ only by case",), id="silent-from-pretrained-case-duplicates"),
])
def test_bad_class_names_at_load(model, tmp_path, names, words):
    prompted = pp.wrap(model, NAMES, n_ctx=2)
    pp.save_pretrained(prompted, tmp_path)
    prompted.eject()
    with refused(ClassNameError, *words):
        pp.from_pretrained(model, tmp_path, classnames=names)


def test_silent_set_classnames_with_case_duplicates(prompted):
    with refused(ClassNameError, "differ only by"):
        prompted.set_classnames(["Dog", "dog"])
    assert prompted.classnames == NAMES  # unchanged


def test_unclear_dpc_base_class_in_other_case(model):
    with refused(ClassNameError, "base class 'Red Circle' is not in the class list", "did you mean 'red circle'?"):
        pp.wrap(model, NAMES, method="dpc", base_classes=["Red Circle"], n_ctx=2)


def test_silent_attribute_bank_with_case_duplicates():
    with refused(ConfigError, "bank:", "'else' (#0) and 'Else' (#1) differ only by"):
        pp.AttributeAnchorLoss(bank=["else", "Else"])


# ---------------------------------------------------------------------------- properties
WORDS = st.sampled_from(["cat", "Cat", "cat ", " cat", "dog", "DOG", "red circle", "red  circle", "Red Circle",
                         "caf\u00e9", "cafe\u0301", "x"])


@settings(max_examples=150, deadline=None)
@given(names=st.lists(WORDS, min_size=1, max_size=6))
def test_property_class_names_are_refused_exactly_when_two_normalise_alike(names):
    keys = [normalize_classname(n) for n in names]
    if len(set(keys)) < len(keys):
        with pytest.raises(ClassNameError):
            check_classnames(names)
    else:
        assert check_classnames(names) == names


SELECTOR_ITEMS = st.one_of(st.integers(-2, 5), st.booleans(), st.floats(-1, 4, allow_nan=False),
                           st.sampled_from(NAMES + ["purple"]))


@settings(max_examples=250, deadline=None)
@given(items=st.lists(SELECTOR_ITEMS, max_size=5), as_tensor=st.booleans())
def test_property_selectors_give_the_reference_indices_or_a_class_name_error(items, as_tensor):
    """The reference reading: all names, all bools (a mask of length 3), or all ints; in range, each once."""
    n = len(NAMES)
    if all(isinstance(i, str) for i in items) and items:
        ref = [NAMES.index(i) if i in NAMES else None for i in items]
    elif all(isinstance(i, bool) for i in items) and items:
        ref = [i for i, keep in enumerate(items) if keep] if len(items) == n else [None]
    elif all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        ref = list(items)
    else:
        ref = [None]
    valid = bool(ref) and None not in ref and all(0 <= i < n for i in ref) and len(set(ref)) == len(ref)
    selector = items
    if as_tensor and items and all(isinstance(i, (int, float)) for i in items) and len({type(i) for i in items}) == 1:
        selector = torch.tensor(items)
        if selector.is_floating_point():
            valid = False
    if not valid:
        with pytest.raises(ClassNameError):
            class_indices(selector, NAMES)
    else:
        assert class_indices(selector, NAMES).tolist() == ref
