"""``TrainPlan``: everything ``train`` was asked to do, checked before any work is done (values, paths, the
output folders of every seed, the device), with errors naming the command-line flag, the value, what was
expected and the fix."""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CONFIG_NAME, check_save_target
from ..config import Config
from ..errors import ConfigError
from .objectives import METHODS
from .state import STATE_NAME, peek_epoch


def check_flag_int(flag: str, value: Any, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise ConfigError(f"{flag} {value!r} is out of range: it must be an integer >= {low}")


def check_flag_float(flag: str, value: Any, *, positive: bool) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or not math.isfinite(value) or (value <= 0 if positive else value < 0):
        raise ConfigError(f"{flag} {value!r} is out of range: it must be a finite number "
                          f"{'> 0' if positive else '>= 0'}")


def parse_device(spec: str) -> torch.device:
    """``--device``: cpu, cuda, cuda:N or mps, available on this machine."""
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {spec!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {spec}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {spec}: MPS is not available on this machine; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {spec!r}: use cpu, cuda, cuda:N or mps")
    return device


def check_writable(path: Path, flag: str) -> None:
    """``path`` is a folder or can be created as one, in a writable place."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a file; pass a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():  # a file on the way: no folder can be created under it (found after training otherwise)
        raise ConfigError(f"{flag} {str(path)!r} cannot be created: {str(probe)!r} is a file; pass another folder")
    probe_writable(probe, f"{flag} {str(path)!r}")


def probe_writable(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder``: the only test that holds for root too (a read-only folder is
    writable by root, an immutable one or a read-only mount by nobody), before hours of training end in a save
    that cannot be written."""
    try:
        fd, name = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
    except OSError as exc:
        raise ConfigError(f"{what} is not writable ({str(folder)!r}: {exc.strerror or type(exc).__name__}); pass a "
                          "folder you can write to, or fix its permissions") from None
    os.close(fd)
    os.unlink(name)


@dataclass
class TrainPlan(Config):
    """The ``train`` command line as a typed record (see ``prompt-plugins train --help``). overrides: recipe
    fields set by flags (``--epochs``, ``--lr``, ..., ``--set``); stop_after: stop after that many epochs (tests);
    anchor_weight: GA2's anchor term (None: 1); allow_mixed: add seeds whose settings differ from ``RUN/run.json``;
    command: the ``train`` arguments as typed (recorded, and named in the ``--resume`` hint)."""

    dataset: str
    root: str
    backbone: str
    out: str
    method: str = "coop"
    recipe: str | None = None
    overrides: dict = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [1])
    shots: int | None = None
    frames: int | None = None
    splits: str | None = None
    classnames: str | None = None
    stage1: str | None = None
    hard_prompt: str | None = None
    anchors: str | None = None
    anchors_root: str | None = None
    anchor_weight: float | None = None
    backbone_base: str | None = None
    teacher: str | None = None
    teacher_backbone: str | None = None
    device: str = "cpu"
    workers: int = 0
    threads: int = 0
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    stop_after: int | None = None
    allow_mixed: bool = False
    command: list[str] | None = None

    def check(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"--method {self.method!r} is unknown; use one of {list(METHODS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds {self.seeds} must be distinct integers, e.g. --seeds 1 2 3")
        for seed in self.seeds:
            check_flag_int("--seeds", seed, 0)
        for flag, value, low in (("--shots", self.shots, 1), ("--frames", self.frames, 1), ("--workers", self.workers, 0),
                                 ("--threads", self.threads, 0), ("--stop-after", self.stop_after, 1)):
            check_flag_int(flag, value, low)
        check_flag_float("--anchor-weight", self.anchor_weight, positive=False)
        for flag, key, low in (("--epochs", "epochs", 1), ("--batch-size", "batch_size", 1),
                               ("--warmup-epochs", "warmup_epochs", 0), ("--n-ctx", "n_ctx", 1),
                               ("--depth", "depth", 1), ("--top-k", "top_k", 1)):
            check_flag_int(flag, self.overrides.get(key), low)
        check_flag_float("--lr", self.overrides.get("lr"), positive=True)
        check_flag_float("--weight-decay", self.overrides.get("weight_decay"), positive=False)
        self._check_method_files()
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other: resume an interrupted run, or start again")

    def _check_method_files(self) -> None:
        own = {"--from": ("dpc", self.stage1), "--hard-prompt": ("ga2", self.hard_prompt),
               "--anchors": ("ga2", self.anchors), "--anchors-root": ("ga2", self.anchors_root),
               "--anchor-weight": ("ga2", self.anchor_weight), "--teacher": ("promptkd", self.teacher)}
        for flag, (method, value) in own.items():
            if value is not None and self.method != method:
                raise ConfigError(f"{flag} is for --method {method}, not {self.method}")
            if isinstance(value, str) and not Path(value).exists():
                raise ConfigError(f"{flag} {value!r} does not exist")
        if self.anchors_root is not None and (self.anchors is None or Path(self.anchors).is_dir()):
            raise ConfigError("--anchors-root is the folder the paths of an --anchors list file are relative to; "
                              + ("pass --anchors LIST" if self.anchors is None else
                                 f"--anchors {self.anchors!r} is a folder: drop --anchors-root"))
        if self.method == "dpc" and self.stage1 is None:
            raise ConfigError("--method dpc trains DPC's stage 2: pass --from RUN, the stage-1 run (or adapter "
                              "folder) of the same data set, shots and seeds")
        if self.method == "promptkd" and self.teacher is None:
            raise ConfigError("--method promptkd distils from a teacher: pass --teacher RUN_OR_ADAPTER (a teacher run "
                              "folder or adapter of the same data set, e.g. a converted PromptSRC ViT-L/14 checkpoint) "
                              "and its CLIP with --teacher-backbone SPEC")
        if self.teacher_backbone is not None and self.method != "promptkd":
            raise ConfigError(f"--teacher-backbone is for --method promptkd (with --teacher), not {self.method}")
        if self.method == "ga2" and self.hard_prompt is None:
            raise ConfigError("--method ga2 needs --hard-prompt FILE: the prompt of a run on other data (a GA2/IVLP/"
                              "ViFi checkpoint, a .safetensors file or an adapter folder written by train)")

    # ------------------------------------------------------------------ output folders
    def seed_dir(self, seed: int) -> Path:
        return Path(self.out) / f"seed{seed}"

    def seed_status(self, seed: int) -> str:
        """"new", "resume" (an interrupted run to continue) or "done" (skipped under --resume); raises when the
        folder holds an adapter or an interrupted run and neither --overwrite nor --resume says what to do."""
        folder = self.seed_dir(seed)
        has_adapter, state = (folder / CONFIG_NAME).is_file(), folder / STATE_NAME
        if self.overwrite:
            return "new"
        if has_adapter and not state.is_file():
            if self.resume:
                return "done"
            raise ConfigError(f"--out {self.out!r}: {folder} already holds an adapter; pass --overwrite to replace "
                              "it, --resume to skip finished seeds, or another --out")
        if state.is_file():
            if self.resume:
                return "resume"
            raise ConfigError(f"--out {self.out!r}: {folder} holds an interrupted run (epoch {peek_epoch(state)} "
                              "done); pass --resume to continue it or --overwrite to start again")
        return "new"

    def check_out(self) -> dict[int, str]:
        check_writable(Path(self.out), "--out")
        if (Path(self.out) / CONFIG_NAME).is_file():
            raise ConfigError(f"--out {self.out!r} is an adapter folder; --out is a run folder whose seed{{N}}/ "
                              "sub-folders receive the adapters: pass another folder")
        for seed in self.seeds:  # a file in the way of a seed folder or its two files fails now, not after training
            check_save_target(self.seed_dir(seed), True, "--out seed folder")
            if self.seed_dir(seed).is_dir():
                probe_writable(self.seed_dir(seed), f"--out seed folder {str(self.seed_dir(seed))!r}")
        return {seed: self.seed_status(seed) for seed in self.seeds}
