"""Two real processes saving different adapters into one folder (issue 15): the folder always holds one complete
adapter (weights and config of the same save), both while they write and after. The ids say the kind
(``bad_cases``): ``safety``."""
import multiprocessing

import pytest
import torch

import prompt_plugins as pp
from prompt_plugins.checkpoint import read_adapter
from prompt_plugins.errors import CheckpointError
from save_worker import save_many
from tiny_models import make_model

TIMES = 40
ADAPTERS = {1.0: ["cat", "dog"], 2.0: ["red circle", "blue square", "green bar"]}


@pytest.mark.timeout(600)
def test_safety_two_processes_saving_into_one_folder_leave_one_complete_adapter(tmp_path):
    model = make_model("openai")
    jobs = []
    for value, names in ADAPTERS.items():
        prompted = pp.wrap(model, names, n_ctx=2)
        with torch.no_grad():
            prompted.prompt.ctx.fill_(value)
        jobs.append((prompted.adapter_config().to_dict(), prompted.adapter_state_dict()))
        prompted.eject()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    procs = [ctx.Process(target=save_many, args=(str(tmp_path), cfg, state, TIMES, barrier)) for cfg, state in jobs]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs):  # a reader in between never sees a mixed pair
        try:
            config, tensors = read_adapter(tmp_path)
        except CheckpointError as exc:
            assert "is missing" in str(exc), exc  # only before the first save lands
            continue
        assert ADAPTERS[float(tensors["prompt.ctx"][0, 0])] == config.classnames
        reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    loaded = pp.from_pretrained(model, tmp_path)
    assert ADAPTERS[float(loaded.prompt.ctx[0, 0])] == loaded.classnames
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    loaded.eject()
