"""The demo's results: the base / new / HM table (means over seeds, HM of the means) and a bar chart."""
from __future__ import annotations

import statistics

from ..base_new import harmonic_mean
from ..errors import ConfigError


def summarise(rows: list[tuple[float, float, float]]) -> tuple[float, float, float, float]:
    """(mean base, mean new, HM of the means, mean seconds) over seeds."""
    base = statistics.mean(r[0] for r in rows)
    new = statistics.mean(r[1] for r in rows)
    return base, new, harmonic_mean(base, new), statistics.mean(r[2] for r in rows)


def format_table(results: dict, seeds: list[int]) -> str:
    header = f"{'method':<17} {'task':<6} {'base':>6} {'new':>6} {'HM':>6} {'s/seed':>7}"
    lines = [f"base-to-new accuracy (%), mean over seeds {' '.join(map(str, seeds))}; HM of the means", header,
             "-" * len(header)]
    for (name, task), rows in results.items():
        s = summarise(rows)
        lines.append(f"{name:<17} {task:<6} {s[0]:6.1f} {s[1]:6.1f} {s[2]:6.1f} {s[3]:7.1f}")
        if len(seeds) > 1:
            per = "  ".join(f"{r[0]:.1f}/{r[1]:.1f}" for r in rows)
            lines.append(f"{'':<17} {'':<6} per seed base/new: {per}")
    return "\n".join(lines)


def check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'prompt-plugins[demo]' (or pip install matplotlib)") from None


def save_plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{n}\n({t})", summarise(r)) for (n, t), r in results.items()]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4))
    width = 0.27
    for k, (metric, colour) in enumerate((("base", "#4c72b0"), ("new", "#dd8452"), ("HM", "#55a868"))):
        xs = [i + (k - 1) * width for i in range(len(rows))]
        ax.bar(xs, [s[k] for _, s in rows], width, label=metric, color=colour)
    ax.set_xticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    ax.set_title("prompt-plugins demo: base-to-new")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
