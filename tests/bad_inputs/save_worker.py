"""Worker of the concurrent-save test (run in a spawned process): save one adapter into one folder many times."""
from __future__ import annotations

from typing import Any


def save_many(directory: str, config: dict[str, Any], state: dict[str, Any], times: int, barrier: Any) -> None:
    import prompt_plugins as pp
    from prompt_plugins.checkpoint import AdapterConfig, RawAdapter

    adapter = RawAdapter(AdapterConfig.from_dict(config), state)
    barrier.wait()  # start together: both processes are imported and ready
    for _ in range(times):
        pp.save_pretrained(adapter, directory)
