"""Shared by the benchmark runners: the threshold tracker and the JSON line each runner prints at its end."""

from __future__ import annotations

import collections
import csv
import json
import time
from pathlib import Path

import psutil

PROCESS_START = psutil.Process().create_time()


class Tracker:
    """Mean return of the last 20 episodes; the step and the seconds since process start when it first reaches
    ``threshold``; an optional progress.csv in proxrl's format (global_step, time, mean_return)."""

    def __init__(self, threshold: float, csv_path: str | None) -> None:
        self.recent: collections.deque[float] = collections.deque(maxlen=20)
        self.threshold = threshold
        self.hit_step: int | None = None
        self.hit_seconds: float | None = None
        self._csv = None
        if csv_path:
            Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(csv_path, "w", newline="")
            self._csv = csv.writer(self._file)
            self._csv.writerow(["global_step", "time", "mean_return"])

    def episode(self, ret: float) -> None:
        self.recent.append(ret)

    def check(self, step: int) -> None:
        mean = sum(self.recent) / len(self.recent) if self.recent else float("nan")
        if self._csv is not None:
            self._csv.writerow([step, f"{time.time() - PROCESS_START:.3f}", f"{mean:.2f}"])
        if self.hit_step is None and len(self.recent) == 20 and mean >= self.threshold:
            self.hit_step, self.hit_seconds = step, time.time() - PROCESS_START

    def report(self, steps: int, train_seconds: float, **extra: object) -> None:
        if self._csv is not None:
            self._file.close()
        final = sum(self.recent) / len(self.recent) if self.recent else None  # mean of the last 20 episodes
        print(
            "RESULT "
            + json.dumps(
                {
                    "steps": steps,
                    "train_seconds": train_seconds,
                    "sps": steps / train_seconds,
                    "hit_step": self.hit_step,
                    "hit_seconds": self.hit_seconds,
                    "final_return": final,
                    "episodes_in_final": len(self.recent),
                    **extra,
                }
            ),
            flush=True,
        )
