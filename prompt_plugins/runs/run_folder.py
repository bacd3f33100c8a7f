"""The run folder ``train --out RUN`` writes: ``RUN/seed{N}/`` (an adapter, or ``training_state.pt`` while a seed
is unfinished) and ``RUN/run.json``, the run's own record: method, recipe (name, overrides and the effective
values), shots, the data set's identity (name, root, class list, base / new), the backbone (spec, resolved path,
weights fingerprint), the method inputs and the ``train`` command. A later ``train --out RUN`` whose settings
differ from it is refused, naming what differs (``--allow-mixed`` adds the seeds anyway, recorded under
``mixed``). A folder written before ``run.json`` existed is checked against its seeds' ``run`` sections."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from ..checkpoint import CONFIG_NAME, read_adapter
from ..errors import ConfigError
from ..files import write_atomic
from .record import RunRecord, read_record
from .state import STATE_NAME, peek_epoch

RUN_RECORD = "run.json"
RUN_RECORD_VERSION = 1
#: the sections of a run record that must agree between the seeds of one run
COMPARED = ("method", "shots", "recipe", "data", "backbone", "inputs")


def seed_folders(run: Path) -> dict[int, Path]:
    """``RUN/seed{N}/`` folders by seed, in seed order."""
    found = {}
    if run.is_dir():
        for p in run.iterdir():
            match = re.fullmatch(r"seed(\d+)", p.name)
            if match and p.is_dir():
                found[int(match.group(1))] = p
    return dict(sorted(found.items()))


def seed_state(folder: Path) -> tuple[str, int | None]:
    """("finished", None), ("interrupted", epochs done: None when unreadable) or ("empty", None)."""
    if (folder / STATE_NAME).is_file():
        return "interrupted", peek_epoch(folder / STATE_NAME)
    if (folder / CONFIG_NAME).is_file():
        return "finished", None
    return "empty", None


def _resolved(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def settings_of(plan: Any, task: Any, recipe: Any, backbone: Any, frames: int | None) -> dict[str, Any]:
    """The settings a seed of ``plan`` trains with (``backbone``: an ``identity.BackboneId``)."""
    return {
        "method": plan.method, "shots": task.shots, "recipe": recipe.to_dict(),
        "data": {"dataset": task.dataset, "protocol": task.protocol, "root": _resolved(plan.root),
                 "splits": _resolved(plan.splits), "classnames_file": _resolved(plan.classnames),
                 "frames": frames if task.kind == "video" else None, "classnames": list(task.classnames),
                 "base_classes": task.base_names, "new_classes": task.new_names},
        "backbone": backbone.to_dict(),
        "inputs": {"stage1": _resolved(plan.stage1), "hard_prompt": _resolved(plan.hard_prompt),
                   "anchors": _resolved(plan.anchors), "anchors_root": _resolved(plan.anchors_root),
                   "anchor_weight": (1.0 if plan.anchor_weight is None else plan.anchor_weight)
                   if plan.method == "ga2" else None,
                   "teacher": _resolved(plan.teacher), "teacher_backbone": plan.teacher_backbone},
    }


def derived_settings(record: RunRecord) -> dict[str, Any]:
    """What a seed's ``run`` section says of the settings (an old run folder without ``run.json``); the fields it
    does not record are left out, and so not compared."""
    data = {"dataset": record.dataset, "protocol": record.protocol, "root": record.root, "frames": record.frames,
            "classnames": record.classnames, "base_classes": record.base_classes, "new_classes": record.new_classes}
    for key, value in (("classnames_file", record.classnames_file), ("splits", record.splits_path)):
        if value is not None:
            data[key] = value
    out = {"method": record.method, "shots": record.shots, "recipe": record.recipe, "data": data, "inputs": {}}
    if record.backbone_fingerprint:
        out["backbone"] = {"spec": record.backbone, "path": record.backbone_path,
                           "fingerprint": record.backbone_fingerprint}
    return out


def read_run_record(run: Path) -> dict[str, Any] | None:
    path = run / RUN_RECORD
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); delete it and train --resume re-derives it from the "
                          "seeds' records") from None
    missing = [k for k in ("version", *COMPARED) if not isinstance(data, dict) or k not in data]
    if missing:
        raise ConfigError(f"{path}: missing field(s) {missing}; it was edited or written by another version: "
                          "delete it and it is re-derived from the seeds' records")
    return data


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 3:
        return f"{len(value)} names" if all(isinstance(v, str) for v in value) else f"{len(value)} values"
    text = repr(value)
    return text if isinstance(value, str) or len(text) <= 80 else text[:77] + "..."  # paths in full


def differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """"key: X recorded vs Y now" for every compared setting that differs (keys ``recorded`` lacks are skipped;
    backbones are compared by fingerprint and named by path)."""
    out = []
    for section in COMPARED:
        if section not in recorded:
            continue
        old, new = recorded[section], now[section]
        if section == "backbone":
            if old.get("fingerprint") != new["fingerprint"]:
                out.append(f"backbone: {old.get('path')} ({old.get('fingerprint')}) recorded vs {new['path']} "
                           f"({new['fingerprint']}) now")
        elif isinstance(old, dict):
            for key in sorted(set(old) & set(new)):
                if old[key] != new[key]:
                    what = f"{section}.{key}" if section != "recipe" else key
                    out.append(f"{what}: {_short(old[key])} recorded vs {_short(new[key])} now"
                               + _first_difference(old[key], new[key]))
        elif old != new:
            out.append(f"{section}: {_short(old)} recorded vs {_short(new)} now")
    return out


def _first_difference(old: Any, new: Any) -> str:
    if not (isinstance(old, list) and isinstance(new, list)):
        return ""
    i = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
    return f" (first difference at #{i}: {old[i] if i < len(old) else '(none)'!r} vs " \
           f"{new[i] if i < len(new) else '(none)'!r})"


def reference(run: Path, others: list[int]) -> tuple[dict[str, Any] | None, str]:
    """The settings the seeds ``others`` of ``run`` were trained with, and where they were read from."""
    record = read_run_record(run)
    if record is not None:
        return record, str(run / RUN_RECORD)
    for seed in others:
        folder = run / f"seed{seed}"
        if (folder / CONFIG_NAME).is_file():
            config, _ = read_adapter(folder)
            found = read_record(config, str(folder / CONFIG_NAME))
            if found is not None:
                return derived_settings(found), f"{folder / CONFIG_NAME}'s 'run' section"
    return None, ""


def check_run_folder(plan: Any, settings: dict[str, Any], new_seeds: list[int]) -> list[str]:
    """Compare ``settings`` with the run's record when ``RUN`` holds seeds this command does not start afresh
    (``new_seeds``); refuse a difference unless ``plan.allow_mixed``; write ``RUN/run.json``. -> notes to print."""
    run = Path(plan.out)
    settings = json.loads(json.dumps(settings))  # as the file holds them (tuples as lists)
    others = [s for s, folder in seed_folders(run).items() if s not in new_seeds and seed_state(folder)[0] != "empty"]
    recorded, source = reference(run, others) if others else (None, "")
    record = {"version": RUN_RECORD_VERSION, **settings, "recipe_name": settings["recipe"].get("name"),
              "overrides": dict(plan.overrides), "commands": {}, "mixed": []}
    notes = []
    if recorded is not None:
        derived = "version" not in recorded
        if derived:
            notes.append(f"{run} has no {RUN_RECORD} (written before run records): its settings are derived from "
                         f"{source}{'' if 'backbone' in recorded else '; the backbone of its seeds is not checked'}")
        diffs = differences(recorded, settings)
        if diffs and not plan.allow_mixed:
            raise ConfigError(f"--out {plan.out!r} holds seeds {others} trained with other settings ({source}): "
                              + "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
                              + ". Pass the same settings, another --out, or --allow-mixed to add these seeds anyway "
                              f"(recorded in {RUN_RECORD})")
        if not derived:
            record = recorded
        else:
            record["note"] = f"written by a later train; the settings of seeds {others} derived from {source}"
        if diffs:
            record["mixed"] = list(record.get("mixed") or []) + [{"seeds": list(new_seeds), "differences": diffs}]
            notes.append(f"--allow-mixed: seeds {new_seeds} differ from {source} ({'; '.join(diffs[:3])}); recorded "
                         f"in {run / RUN_RECORD}")
    if plan.command is not None:  # the command each seed was started by: what its --resume hint repeats
        started = {str(s): command_line(plan.command) for s in new_seeds}
        record["commands"] = {**(record.get("commands") or {}), **started}
    run.mkdir(parents=True, exist_ok=True)
    write_atomic(run / RUN_RECORD, (json.dumps(record, indent=2) + "\n").encode())
    return notes


def command_line(argv: list[str] | None) -> str | None:
    return None if argv is None else shlex.join(["prompt-plugins", *argv])


def resume_command(plan_or_record: Any, out: str | Path, seed: int | None = None) -> str:
    """The command that continues an interrupted seed: the ``train`` command that started it (a plan's, or the one
    ``run.json`` records for ``seed``) without ``--overwrite`` / ``--stop-after``, with ``--resume``; else a
    template naming ``--out``."""
    argv = getattr(plan_or_record, "command", None)
    if isinstance(plan_or_record, dict):
        text = (plan_or_record.get("commands") or {}).get(str(seed))
        argv = shlex.split(text)[1:] if text else None
    if not argv:
        return f"prompt-plugins train <the same arguments> --out {shlex.quote(str(out))} --resume"
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == "--stop-after":
            skip = True
            continue
        if token == "--overwrite" or token.startswith("--stop-after="):
            continue
        kept.append(token)
    if "--resume" not in kept:
        kept.append("--resume")
    return shlex.join(["prompt-plugins", *kept])
