import os
import warnings

import pytest
import torch

from tiny_models import BACKENDS, make_model

# 2 threads on the 2-core CI machine; OMP_NUM_THREADS=1 (honoured) on a machine shared with other jobs, where
# torch's spinning OpenMP threads collapse
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))
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
