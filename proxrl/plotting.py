"""Learning curves from run directories: one line per group of runs, mean with a min–max band across seeds."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

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
    """Draw every group's mean curve (min–max band for ≥ 2 runs) and save a PNG to ``out``; ``y`` is one
    progress.csv column or several separated by commas (e.g. ``mean_return,entropy``), each in its own panel
    with its own label. A column that no run logged is refused, naming the columns there are."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .config import ConfigError

    groups = group_runs(specs)
    columns = [c.strip() for c in y.split(",") if c.strip()]
    logged: set[str] = set()
    for dirs in groups.values():
        for d in dirs:
            rows = read_progress(d)
            if not rows:
                raise ConfigError(f"{d} has no progress rows to plot (progress.csv is missing or empty)")
            logged.update(rows[0])
    missing = [c for c in columns if c not in logged]
    if missing or not columns:
        raise ConfigError(
            f"no column {', '.join(missing) or repr(y)} in progress.csv; columns: {', '.join(sorted(logged))}"
        )
    fig, axes = plt.subplots(
        len(columns), 1, figsize=(7, 3.2 * len(columns) + 1.0), dpi=120, sharex=True, squeeze=False
    )
    for ax, column in zip(axes[:, 0], columns, strict=True):
        for label, dirs in groups.items():
            _draw(ax, label, [curve(d, x, column) for d in dirs])
        ax.set_ylabel(column.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel(X_COLUMNS[x][1])
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _draw(ax: Any, label: str, curves: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """One group's line on ``ax``: its run, or the mean of its runs with a min–max band."""
    curves = [c for c in curves if len(c[0])]
    if not curves:
        return
    if len(curves) == 1:
        ax.plot(*curves[0], label=label)
        return
    grid = np.linspace(max(c[0][0] for c in curves), min(c[0][-1] for c in curves), 200)
    ys = np.stack([np.interp(grid, cx, cy) for cx, cy in curves])
    (line,) = ax.plot(grid, ys.mean(0), label=f"{label} (mean of {len(curves)})")
    ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.2, color=line.get_color())
