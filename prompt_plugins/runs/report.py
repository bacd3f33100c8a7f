"""``benchmark``: the papers' base-to-new table from ``eval --json`` results. Per method and data set: the mean
base and new accuracy over seeds and the HM of those means; per method: the average over its data sets (mean of
the base means, mean of the new means, HM of the two), as CoOp's "Average over 11 datasets" row. Markdown, CSV
and an optional bar chart.

Results are grouped by data set identity (name, root, class list) and backbone (weights fingerprint), never by
the name alone: two ``imagefolder`` sets, or one set on two backbones, are separate rows, labelled by what tells
them apart. A file given twice, or a result present twice unchanged, is counted once (with a note)."""
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


def load_results(paths: list[str], notes: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(file, result) pairs from JSON files (an object or a list of them) and folders (every ``*.json`` below that
    holds results; other JSON files, such as adapter configs, are skipped). A file reached twice (``DIR`` and
    ``DIR/a.json``) is read once; ``notes`` collects what was skipped so."""
    found: list[tuple[str, dict[str, Any]]] = []
    seen: dict[Path, str] = {}
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files, strict = sorted(path.rglob("*.json")), False
        elif path.is_file():
            files, strict = [path], True
        else:
            raise ConfigError(f"{p!r} does not exist; pass the JSON files eval --json wrote, or folders holding them")
        for file in files:
            if file.resolve() in seen:
                if notes is not None and strict:
                    notes.append(f"{file} is given twice (also through {seen[file.resolve()]}); read once")
                continue
            seen[file.resolve()] = p
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


def _identity(r: dict[str, Any]) -> tuple[Any, ...]:
    """(data set name, root, class list, backbone): what must agree for results to share a row (None where an
    older result does not record it)."""
    names = r.get("classnames")
    return (r["dataset"], r.get("root"), tuple(names) if isinstance(names, list) else None,
            r.get("backbone_fingerprint") or r.get("backbone"))


def _labels(identities: set[tuple[Any, ...]], files: dict[Any, str]) -> dict[tuple[Any, ...], tuple[str, str]]:
    """identity -> (data set label, backbone label): the bare name unless another identity shares it, then what
    tells them apart (the root's last folders, the class count); the backbone (its file name and fingerprint,
    from ``files``) only when the results hold more than one."""
    out = {}
    several = len({i[3] for i in identities}) > 1
    for ident in identities:
        name, root, names, backbone = ident
        rivals = [i for i in identities if i[0] == name and i[:3] != ident[:3]]
        parts = []
        if any(i[1] != root for i in rivals):
            parts.append("/".join(Path(root).parts[-2:]) if root else "root ?")
        if any(i[2] != names for i in rivals):
            parts.append(f"{len(names)} classes: {', '.join(names[:2])}, ..." if names else "classes ?")
        label = files.get(backbone, str(backbone))
        if str(backbone).startswith("sha256:"):
            label += f" {str(backbone)[len('sha256:'):][:8]}"
        out[ident] = (f"{name} ({'; '.join(parts)})" if parts else name, label if several else "")
    return out


def aggregate(results: list[tuple[str, dict[str, Any]]], notes: list[str] | None = None) -> list[Row]:
    """One row per (data set identity, backbone, method, shots), seeds averaged; a seed present twice is counted
    once when both results are equal (a note), else an error."""
    groups: dict[tuple[Any, ...], dict[int, tuple[str, dict[str, Any]]]] = {}
    files: dict[Any, str] = {}  # backbone -> its file name, for the labels
    for file, r in results:
        ident = _identity(r)
        if r.get("backbone"):
            files.setdefault(ident[3], Path(str(r["backbone"])).name)
        key = (ident, r["method"], int(r["shots"]))
        seeds = groups.setdefault(key, {})
        if int(r["seed"]) in seeds:
            other = seeds[int(r["seed"])]
            if other[1] == r:
                if notes is not None:
                    notes.append(f"{r['method']} on {r['dataset']}, seed {r['seed']}: the same result is in "
                                 f"{other[0]} and {file}; counted once")
                continue
            raise ConfigError(f"{r['method']} on {r['dataset']} ({r['shots']} shots), seed {r['seed']} is in both "
                              f"{other[0]} and {file} with other numbers; pass each result once")
        seeds[int(r["seed"])] = (file, r)
    labels = _labels({ident for ident, _, _ in groups}, files)
    rows = []
    for (ident, method, shots), seeds in groups.items():
        dataset, backbone = labels[ident]
        rows.append(Row(dataset, f"{method} ({backbone})" if backbone else method, shots, sorted(seeds),
                        mean(x["base"]["accuracy"] for _, x in seeds.values()),
                        mean(x["new"]["accuracy"] for _, x in seeds.values())))
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(rows, key=lambda r: (rank.get(r.dataset.split(" (")[0], len(ORDER)), r.dataset, r.method, r.shots))


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


def check_plot(path: str, flag: str = "--plot") -> None:
    """``--plot FILE``, checked before any work: matplotlib installed, a file type it writes, a writable folder."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ConfigError(f"{flag} needs matplotlib: pip install matplotlib") from None
    kinds = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in kinds:
        raise ConfigError(f"{flag} {path!r}: matplotlib writes {', '.join(f'.{k}' for k in sorted(kinds))}, not "
                          f"{'.' + suffix if suffix else 'a file without an extension'}; pass e.g. {flag} "
                          f"{Path(path).with_suffix('.png')}")


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
