"""``benchmark``: the papers' base-to-new table from ``eval --json`` results. Per method and data set: the mean
base and new accuracy over seeds and the HM of those means; per method: the average over its data sets (mean of
the base means, mean of the new means, HM of the two), as CoOp's "Average over 11 datasets" row. Markdown, CSV
and an optional bar chart."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from ..base_new import harmonic_mean
from ..errors import ConfigError

#: CoOp's table order; other data sets follow alphabetically
ORDER = ["ImageNet", "Caltech101", "OxfordPets", "StanfordCars", "OxfordFlowers", "Food101", "FGVCAircraft", "SUN397",
         "DescribableTextures", "EuroSAT", "UCF101", "K400", "HMDB51", "UCF101-video", "SSv2"]
REQUIRED = ("dataset", "method", "seed", "shots", "base", "new")


@dataclass
class Row:
    dataset: str
    method: str
    shots: int
    seeds: list[int]
    base: float
    new: float

    @property
    def hm(self) -> float:
        return harmonic_mean(self.base, self.new)


def _is_result(obj: Any) -> bool:
    return isinstance(obj, dict) and all(k in obj for k in REQUIRED) and isinstance(obj.get("base"), dict)


def load_results(paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(file, result) pairs from JSON files (an object or a list of them) and folders (every ``*.json`` below that
    holds results; other JSON files, such as adapter configs, are skipped)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files, strict = sorted(path.rglob("*.json")), False
        elif path.is_file():
            files, strict = [path], True
        else:
            raise ConfigError(f"{p!r} does not exist; pass the JSON files eval --json wrote, or folders holding them")
        for file in files:
            try:
                data = json.loads(file.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                if strict:
                    raise ConfigError(f"{file} is not valid JSON ({exc})") from None
                continue
            items = data if isinstance(data, list) else [data]
            if strict and not all(_is_result(d) for d in items):
                raise ConfigError(f"{file} is not an eval result: expected objects with {list(REQUIRED)} "
                                  "(what eval --json writes)")
            found += [(str(file), d) for d in items if _is_result(d)]
    if not found:
        raise ConfigError(f"no eval results in {paths}; write them with prompt-plugins eval ... --json FILE")
    return found


def aggregate(results: list[tuple[str, dict[str, Any]]]) -> list[Row]:
    """One row per (data set, method, shots), seeds averaged; duplicates are an error."""
    groups: dict[tuple[str, str, int], dict[int, tuple[str, dict[str, Any]]]] = {}
    for file, r in results:
        key = (r["dataset"], r["method"], int(r["shots"]))
        seeds = groups.setdefault(key, {})
        if int(r["seed"]) in seeds:
            raise ConfigError(f"{r['method']} on {r['dataset']} ({r['shots']} shots), seed {r['seed']} is in both "
                              f"{seeds[int(r['seed'])][0]} and {file}; pass each result once")
        seeds[int(r["seed"])] = (file, r)
    rows = [Row(d, m, s, sorted(seeds), mean(x["base"]["accuracy"] for _, x in seeds.values()),
                mean(x["new"]["accuracy"] for _, x in seeds.values())) for (d, m, s), seeds in groups.items()]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(rows, key=lambda r: (rank.get(r.dataset, len(ORDER)), r.dataset, r.method, r.shots))


def averages(rows: list[Row]) -> list[Row]:
    """Per (method, shots): the average over its data sets (mean base, mean new; HM of the two)."""
    out = []
    for method, shots in sorted({(r.method, r.shots) for r in rows}):
        mine = [r for r in rows if (r.method, r.shots) == (method, shots)]
        seeds = sorted({s for r in mine for s in r.seeds})
        label = f"Average ({len(mine)} data set{'s' if len(mine) > 1 else ''})"
        out.append(Row(label, method, shots, seeds, mean(r.base for r in mine),
                       mean(r.new for r in mine)))
    return out


COLUMNS = ["data set", "method", "shots", "seeds", "base", "new", "HM"]


def _cells(row: Row) -> list[str]:
    return [row.dataset, row.method, str(row.shots), " ".join(map(str, row.seeds)), f"{row.base:.2f}",
            f"{row.new:.2f}", f"{row.hm:.2f}"]


def to_markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in averages(rows) + rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(_cells(r) for r in averages(rows) + rows)
    return buffer.getvalue()


def save_plot(rows: list[Row], path: str) -> None:
    """Grouped bars of base / new / HM per data set (the average first), one bar per method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install matplotlib") from None
    table = averages(rows) + rows
    datasets = list(dict.fromkeys(r.dataset for r in table))
    methods = list(dict.fromkeys(f"{r.method} ({r.shots} shots)" for r in table))
    fig, axes = plt.subplots(3, 1, figsize=(max(6.0, 1.2 * len(datasets)), 9), sharex=True)
    width = 0.8 / len(methods)
    for ax, metric in zip(axes, ("base", "new", "hm")):
        for j, m in enumerate(methods):
            values = [next((getattr(r, metric) for r in table if r.dataset == d and f"{r.method} ({r.shots} shots)" == m),
                           0.0) for d in datasets]
            ax.bar([i + j * width for i in range(len(datasets))], values, width, label=m)
        ax.set_ylabel(metric.upper() if metric == "hm" else metric)
        ax.set_ylim(0, 100)
    axes[0].legend(fontsize="small")
    axes[-1].set_xticks([i + 0.4 - width / 2 for i in range(len(datasets))], datasets, rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
