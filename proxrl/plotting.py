"""Learning curves from run directories: one line per group of runs, mean with a min–max band across seeds."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from .logging import read_progress

X_COLUMNS = {"steps": ("global_step", "environment steps"), "time": ("time", "wall time (s)")}


def group_runs(specs: list[str]) -> OrderedDict[str, list[Path]]:
    """``LABEL=DIR`` puts DIR in group LABEL; a bare DIR goes to a group named after the directory's name
    without its trailing seed/timestamp (all bare DIRs form one group when they share that stem)."""
    groups: OrderedDict[str, list[Path]] = OrderedDict()
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            path, label = spec, Path(spec).name.split("_s")[0] or Path(spec).name
        groups.setdefault(label, []).append(Path(path))
    return groups


def curve(run_dir: Path, x: str = "steps", y: str = "mean_return") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one run, rows where y is defined."""
    rows = read_progress(run_dir)
    xs = np.array([r[X_COLUMNS[x][0]] for r in rows])
    ys = np.array([r.get(y, np.nan) for r in rows])
    keep = np.isfinite(ys)
    return xs[keep], ys[keep]


def plot_runs(
    specs: list[str], out: str | Path, x: str = "steps", y: str = "mean_return", title: str | None = None
) -> Path:
    """Draw every group's mean curve (min–max band for ≥ 2 runs) on a shared grid and save a PNG to ``out``;
    ``y`` is one progress.csv column or several separated by commas (e.g. ``accuracy,sampled_accuracy``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    columns = y.split(",")
    for (label, dirs), column in ((g, c) for g in group_runs(specs).items() for c in columns):
        if len(columns) > 1:
            label = f"{label}: {column.replace('_', ' ')}"
        curves = [curve(d, x, column) for d in dirs]
        curves = [c for c in curves if len(c[0])]
        if not curves:
            continue
        if len(curves) == 1:
            ax.plot(*curves[0], label=label)
            continue
        grid = np.linspace(max(c[0][0] for c in curves), min(c[0][-1] for c in curves), 200)
        ys = np.stack([np.interp(grid, cx, cy) for cx, cy in curves])
        (line,) = ax.plot(grid, ys.mean(0), label=f"{label} (mean of {len(curves)})")
        ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.2, color=line.get_color())
    ax.set_xlabel(X_COLUMNS[x][1])
    ax.set_ylabel(y.replace("_", " ") if len(columns) == 1 else "")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
