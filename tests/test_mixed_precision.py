"""200 training steps under CPU autocast for every method: fp16 autocast with the fp16-converted
OpenAI model, and bf16 autocast with fp32 weights (PyTorch cannot run fp16 weights under CPU bf16)."""
import os
import sys

import pytest
import torch

import prompt_plugins as pp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from mixed_precision import METHODS, soak, tiny_openai  # noqa: E402


@pytest.mark.parametrize("dtype, fp16_weights", [(torch.float16, True), (torch.bfloat16, False)])
@pytest.mark.parametrize("method", METHODS)
def test_200_autocast_steps_stay_finite(method, dtype, fp16_weights):
    result = soak(method, "cpu", steps=200, dtype=dtype, fp16_weights=fp16_weights)
    assert result["finite"], result
    assert result["dtype"] == str(dtype).replace("torch.", "")


def test_fp16_weights_under_cpu_bf16_autocast_is_a_clear_error():
    prompted = pp.wrap(tiny_openai("cpu"), ["cat", "dog"], n_ctx=2)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(pp.ConfigError, match="fp16 weights but CPU autocast"):
        prompted(torch.randn(1, 3, 32, 32))
