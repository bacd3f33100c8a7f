"""Adapters of format 1, written by main at a1b0067 (before the restructure), still load and give the
same logits. The files and how they were made: ``tests/fixtures/format1/make.py``."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import prompt_plugins as pp
from tiny_models import make_model

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "format1"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def test_every_fixture_is_format_1():
    assert len(CASES) == 7
    for name in CASES:
        assert json.loads((FIXTURES / name / "adapter_config.json").read_text())["format_version"] == 1


@pytest.mark.parametrize("name", CASES)
def test_format1_adapter_loads_with_the_same_logits(name):
    expected = load_file(str(FIXTURES / name / "expected.safetensors"))
    adapter = pp.from_pretrained(make_model("openai"), FIXTURES / name)
    adapter.eval()
    with torch.no_grad():
        logits = adapter(expected["inputs"])
    torch.testing.assert_close(logits, expected["logits"], atol=1e-4, rtol=0)
