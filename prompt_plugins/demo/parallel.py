"""Run the demo's runners in lanes side by side in worker processes (``Runner.lane``), one CPU thread share
each: the tiny CLIP's small matrices use one core far better than two, so two lanes on two cores take about as
long as the longer one alone. Every runner is seeded, so the table is the one a sequential run prints."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

import torch

from ..training import Timer, seeded
from .runners import RUNNERS, Context, Runner
from .world import World, WorldConfig, build_clip

Results = dict[tuple[str, str], list[tuple[float, float, float]]]


def run_lane(cfg: WorldConfig, state: dict[str, torch.Tensor] | None, model: Any, keys: Sequence[tuple[str, str]],
             seeds: Sequence[int], progress: bool, evaluation: str, device: str, threads: int = 0) -> Results:
    """The runners ``keys`` ((name, task) of ``RUNNERS``; one lane) for every seed. In a worker ``model`` is
    None and is built from ``state``."""
    runners = [r for r in RUNNERS if (r.name, r.task) in keys]
    if threads:
        torch.set_num_threads(threads)
    if model is None:
        model = build_clip(cfg)
        model.load_state_dict(state)
        model.to(device).eval()
    world, shared, results = World(cfg), {}, {}
    for seed in seeds:
        ctx = Context(cfg, world, model, seed, progress, shared, evaluation)
        for runner in runners:
            with Timer() as t:  # every runner starts from the seed (dropout masks, inits): same table cached or not
                base, new = seeded(seed, lambda: runner.fn(ctx))
            results.setdefault((runner.name, runner.task), []).append((base, new, t.seconds))
    return results


def run_lanes(cfg: WorldConfig, model: Any, runners: Sequence[Runner], seeds: Sequence[int], *, progress: bool,
              evaluation: str, device: str, jobs: int) -> Results:
    """Group ``runners`` by lane and run the lanes in ``jobs`` processes (1: in this process); the results
    keep ``runners``' order."""
    groups: dict[int, list[tuple[str, str]]] = {}
    for runner in runners:
        groups.setdefault(runner.lane, []).append((runner.name, runner.task))
    jobs = min(jobs, len(groups))
    if jobs <= 1:
        parts = [run_lane(cfg, None, model, group, seeds, progress, evaluation, device) for group in groups.values()]
    else:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        threads = max(1, torch.get_num_threads() // jobs)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_lane, cfg, state, None, group, seeds, progress, evaluation, device, threads)
                       for group in groups.values()]
            parts = [f.result() for f in futures]
    merged = {k: v for part in parts for k, v in part.items()}
    return {(r.name, r.task): merged[(r.name, r.task)] for r in runners}
