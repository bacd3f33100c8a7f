"""Fixtures of the bad-input cases: one tiny OpenAI CLIP per module and a CoOp wrapper on it, ejected after
each test (the model is shared)."""
import pytest

from bad_cases import wrapped
from tiny_models import make_model


@pytest.fixture(scope="module")
def model():
    return make_model("openai")


@pytest.fixture
def prompted(model):
    yield from wrapped(model)
