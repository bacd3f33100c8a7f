"""The built-in base-to-new demo: a procedural world of coloured shapes (``world/``), a tiny CLIP pretrained on
it, and the method runners (``runners.py``) whose table ``prompt-plugins demo`` prints (``report.py``).

A fixture for showing what the methods do without downloads; the library does not depend on it. Needs numpy
and the ``clip`` package (the ``demo`` extra); ``import prompt_plugins`` never imports it.
"""
from __future__ import annotations

import os
import time
from typing import Any, Sequence

import torch

from ..errors import ConfigError
from .parallel import Results, run_lanes
from .report import check_matplotlib, format_table, save_plot
from .runners import RUNNERS
from .world import World, load_or_pretrain, preset


def run_demo(*, world: str = "default", overrides: dict[str, Any] | None = None, seeds: Sequence[int] = (1,),
             methods: Sequence[str] | None = None, video: bool = True, device: str = "cpu", progress: bool = True,
             plot: str | None = None, evaluation: str = "test", jobs: int = 0) -> Results:
    """Run the selected runners for every seed, print the table (and save ``plot``); returns
    ``{(method, task): [(base, new, seconds) per seed]}``. ``jobs``: the runners' lanes run side by side in that
    many processes (0: one per lane on CPU, up to the cores; 1: in this process)."""
    if plot:
        check_matplotlib()
    cfg = preset(world).with_(**(overrides or {}))
    the_world = World(cfg)
    runners = [r for r in RUNNERS if (video or r.task != "video") and (not methods or r.name in methods)]
    if not runners:
        raise ConfigError(f"--methods {list(methods or [])} selects nothing; known: {sorted({r.name for r in RUNNERS})}")
    if jobs < 0:
        raise ConfigError(f"jobs={jobs}: must be >= 0 (0 picks one process per lane on CPU, 1 runs in this process)")
    if jobs == 0:
        jobs = 1 if device != "cpu" else max(1, min(2, os.cpu_count() or 1, torch.get_num_threads()))
    total = time.perf_counter()
    model, cached, seconds = load_or_pretrain(cfg, progress=progress, device=device)
    model.to(device)
    print(f"tiny CLIP {'loaded' if cached else 'pretrained'} in {seconds:.1f} s; {the_world.n_classes} classes "
          f"({len(the_world.base)} base / {len(the_world.new)} new, new colours unseen in tuning), "
          f"{cfg.shots} shots per base class, {cfg.n_test} test items per class; "
          f"{len(the_world.source)} source classes (other colours) for GA2's hard prompt and anchors")
    results = run_lanes(cfg, model, runners, seeds, progress=progress, evaluation=evaluation, device=device,
                        jobs=jobs)
    print()
    if evaluation != "test":
        print(f"evaluated on the {evaluation} split (not the reported test split)")
    print(format_table(results, list(seeds)))
    print(f"\ntotal {time.perf_counter() - total:.1f} s")
    if plot:
        save_plot(results, plot)
        print(f"saved {plot}")
    return results


__all__ = ["run_demo", "RUNNERS", "World", "preset", "load_or_pretrain"]
