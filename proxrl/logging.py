"""Run outputs: ``progress.csv``, TensorBoard event files, and a progress bar on a terminal (quiet otherwise)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

CSV_NAME = "progress.csv"


class RunLogger:
    """Writes one row per update to CSV (and TensorBoard), and shows SPS and mean return in a progress bar."""

    def __init__(
        self,
        run_dir: str | Path | None,
        total_steps: int,
        tensorboard: bool = True,
        progress: bool | None = None,
        resume_step: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._csv_file: IO[str] | None = None
        self._csv: csv.DictWriter[str] | None = None
        self._fields: list[str] | None = None
        self._tb: SummaryWriter | None = None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path = self.run_dir / CSV_NAME
            if resume_step is not None and path.is_file():
                # Rows written after the checkpoint we resume from are dropped: they will be produced again.
                with path.open(newline="") as f:
                    reader = csv.DictReader(f)
                    self._fields = list(reader.fieldnames or []) or None
                    kept = [r for r in reader if float(r["global_step"]) <= resume_step]
                self._csv_file = path.open("w", newline="")
                if self._fields:
                    self._csv = csv.DictWriter(self._csv_file, fieldnames=self._fields, extrasaction="ignore")
                    self._csv.writeheader()
                    self._csv.writerows(kept)
            else:
                self._csv_file = path.open("w", newline="")
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter  # imported lazily: it takes a second

                self._tb = SummaryWriter(str(self.run_dir / "tb"))
        show = sys.stdout.isatty() if progress is None else progress
        self._progress = None
        if show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
            )
            self._task = self._progress.add_task("train", total=total_steps, info="")
            self._progress.start()

    def log(self, row: dict[str, Any]) -> None:
        """Append ``row`` (must contain ``global_step``) to every output."""
        if self._csv_file is not None:
            if self._csv is None:
                self._fields = list(row)
                self._csv = csv.DictWriter(self._csv_file, fieldnames=self._fields, extrasaction="ignore")
                self._csv.writeheader()
            self._csv.writerow({k: _fmt(v) for k, v in row.items()})
            self._csv_file.flush()
        step = int(row["global_step"])
        if self._tb is not None:
            for key, value in row.items():
                if key != "global_step" and isinstance(value, (int, float)) and value == value:
                    self._tb.add_scalar(_tb_tag(key), value, step)
        if self._progress is not None:
            ret = row.get("mean_return")
            info = f"SPS {row.get('sps', 0):,.0f}" + (f"  return {ret:.1f}" if ret == ret and ret is not None else "")
            self._progress.update(self._task, completed=step, info=info)

    def close(self) -> None:
        """Flush and close every output."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _tb_tag(key: str) -> str:
    if key in ("mean_return", "mean_length", "episodes"):
        return f"charts/{key}"
    if key in ("sps", "lr", "clip_eps", "time"):
        return f"charts/{key}"
    return f"losses/{key}"


def read_progress(run_dir: str | Path) -> list[dict[str, float]]:
    """Rows of a run's ``progress.csv`` as floats (empty cells as NaN)."""
    path = Path(run_dir) / CSV_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a proxrl run directory?")
    with path.open() as f:
        return [
            {k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()} for row in csv.DictReader(f)
        ]
