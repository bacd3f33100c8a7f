import warnings

import pytest
import torch

from tiny_models import BACKENDS, make_model

torch.set_num_threads(2)
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

CLASSNAMES = ["red circle", "blue square", "green triangle", "yellow star with five points"]


@pytest.fixture(params=BACKENDS)
def backend_name(request) -> str:
    return request.param


@pytest.fixture
def clip_model(backend_name):
    return make_model(backend_name)


@pytest.fixture
def classnames() -> list[str]:
    return list(CLASSNAMES)
