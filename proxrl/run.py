"""The run core every trainer shares, by composition (DESIGN: one trainer skeleton).

- :class:`Progress` — the run's counters and its window of recent episodes: what a checkpoint restores besides
  the weights, optimiser and RNG states.
- :class:`Session` — around a ``learn`` loop: the run directory's ``config.yaml``, one ``progress.csv`` /
  TensorBoard row per iteration, wall time, the checkpoint cadence, the stop rule and the final save.
- :class:`Trainer` — the protocol the CLI, :func:`proxrl.load` and the Session rely on.

A trainer holds a Progress, runs its loop inside a Session and chooses its checkpoint store (a file, or a
``save_pretrained`` folder for language models); the Session never asks which method it serves.
"""

from __future__ import annotations

import collections
import contextlib
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

from . import config as cfgmod
from . import rundir
from .checkpoint import Migration
from .config import RunConfig
from .errors import Interrupted, RunWarning
from .logging import RunLogger

RETURN_WINDOW = 20  # "mean return" is over the last 20 finished episodes (SB3's and CleanRL's window too)


@dataclass
class Progress:
    """Counters of a run: ``global_step`` (env steps, or GRPO steps), ``iteration`` (updates), episodes finished
    (or completions sampled), training wall time summed over resumed sessions, and the last 20 episodes' returns
    and lengths."""

    global_step: int = 0
    iteration: int = 0
    num_episodes: int = 0
    elapsed: float = 0.0
    recent_returns: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=RETURN_WINDOW))
    recent_lengths: collections.deque[int] = field(default_factory=lambda: collections.deque(maxlen=RETURN_WINDOW))
    last_samples: int = field(default=0, compare=False)  # the last iteration's env steps or completions (not saved)

    def advance(
        self,
        steps: int,
        returns: Iterable[float] = (),
        lengths: Iterable[int] = (),
        episodes: int | None = None,
        samples: int | None = None,
    ) -> None:
        """One iteration of ``steps`` more steps, with the episodes it finished (``episodes`` counts them when
        they are not one return each, e.g. GRPO's completions) and the ``samples`` it collected (default: its
        steps)."""
        returns, lengths = list(returns), list(lengths)
        self.last_samples = steps if samples is None else samples
        self.global_step += steps
        self.iteration += 1
        self.num_episodes += len(returns) if episodes is None else episodes
        self.recent_returns.extend(returns)
        self.recent_lengths.extend(lengths)

    def mean_return(self) -> float:
        """Mean of the recent returns (NaN before any)."""
        return _mean(self.recent_returns)

    def done_line(self, what: str = "mean return", digits: int = 1) -> str:
        """The summary's first line: steps, episodes and ``what`` over the recent training episodes (or that no
        episode has finished yet)."""
        recent = list(self.recent_returns)
        mean = (
            f"{what} of the last {len(recent)} training episodes {sum(recent) / len(recent):.{digits}f}"
            if recent
            else "no training episode finished yet (a longer run, or a shorter episode limit, would show returns)"
        )
        return f"done: {self.global_step:,} steps, {self.num_episodes:,} episodes; {mean}"

    def reached(self, stop_return: float | None) -> bool:
        """True once ``stop_return`` is set and the last 20 episodes' mean return reaches it."""
        return (
            stop_return is not None
            and len(self.recent_returns) == self.recent_returns.maxlen
            and self.mean_return() >= stop_return
        )

    def state_dict(self) -> dict[str, Any]:
        """The counters as checkpoint-safe values (top-level keys of a checkpoint)."""
        return {
            "global_step": self.global_step,
            "iteration": self.iteration,
            "num_episodes": self.num_episodes,
            "elapsed": self.elapsed,
            "recent_returns": list(self.recent_returns),
            "recent_lengths": list(self.recent_lengths),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s keys from a checkpoint."""
        self.global_step, self.iteration = int(state["global_step"]), int(state["iteration"])
        self.num_episodes, self.elapsed = int(state["num_episodes"]), float(state["elapsed"])
        self.recent_returns.clear()
        self.recent_returns.extend(state["recent_returns"])
        self.recent_lengths.clear()
        self.recent_lengths.extend(state["recent_lengths"])


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


Callback = Callable[[Any, dict[str, Any]], bool | None]  # ``callback(trainer, row)``; False stops training


class Trainer(Protocol):
    """What the CLI, :func:`proxrl.load` and the :class:`Session` use of a trainer (PPO, PG, OffPolicyPG,
    MultiAgentPPO, GRPO), with its real signatures. A trainer *declares* what it can do in the class attributes
    below; no generic module names an algorithm or probes a trainer with ``getattr``. The flags ``proxrl train``
    offers a method are its config keys (``config_class``)."""

    algo: ClassVar[str]
    config_class: ClassVar[type[RunConfig]]
    final_checkpoint: ClassVar[str]  # the run directory's last save: "model.pt" (a file) or "model" (a folder)
    sample_unit: ClassVar[str]  # what an iteration collects: "env steps", or "completions"
    migrations: ClassVar[Mapping[int, Migration]]  # format version v → its states brought to v + 1 (checkpoint.load)
    bench_steps: ClassVar[int]  # `proxrl bench`'s default budget, in steps
    data_parallel: ClassVar[bool]  # several processes (torchrun, WORLD_SIZE > 1) train it data-parallel
    progress: Progress
    run_dir: Path | None
    show_progress: bool | None

    def __init__(self, *, config: Any, run_dir: str | Path | None = None, progress: bool | None = None) -> None:
        """Build the trainer for ``config`` (its ``config_class``), writing to ``run_dir`` if given."""
        ...

    @classmethod
    def load(
        cls, path: str | Path, *, run_dir: str | Path | None = None, progress: bool | None = None, **overrides: Any
    ) -> Self:
        """Rebuild a trainer from a checkpoint (a file, a folder or a run directory), ``overrides`` over its
        config."""
        ...

    @property
    def config(self) -> RunConfig:
        """The resolved config (an instance of ``config_class``)."""
        ...

    @property
    def global_step(self) -> int:
        """Steps trained so far, in the unit of ``total_steps``."""
        ...

    @property
    def method(self) -> str:
        """The name the run is shown under (``algo``, or the variant it runs, e.g. mappo)."""
        ...

    def learn(self, total_steps: int | None = None, callback: Callback | None = None) -> Self:
        """Train for ``total_steps`` more steps (default: until ``config.total_steps``)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to evaluate or resume."""
        ...

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (atomically) to ``path``."""
        ...

    def save_checkpoint(self) -> Path:
        """Write the next periodic checkpoint under ``run_dir / "checkpoints"``, pruning old ones."""
        ...

    def saves_together(self) -> bool:
        """True when every process of a data-parallel run takes part in a save (a sharded model)."""
        ...

    def describe_evaluation(
        self,
        episodes: int = 20,
        deterministic: bool = True,
        video_dir: str | Path | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """``proxrl eval``: evaluate on fresh episodes (or held-out prompts) and say how it went, one line each."""
        ...

    def summary(self, eval_episodes: int = 0) -> list[str]:
        """What the CLI prints when training ends: one line each."""
        ...

    def describe(self) -> list[str]:
        """What the CLI prints before training: the network built and the data's preprocessing, one line each."""
        ...

    def close(self) -> None:
        """Stop what the trainer started beside itself (envs, runner actors); ``learn`` starts them again."""
        ...


class Processes(Protocol):
    """The processes of a data-parallel run as the session sees them (``lm.distributed.World``): the main one
    writes, and every stop is agreed by all."""

    @property
    def main(self) -> bool: ...

    def any(self, flag: bool, what: str) -> bool: ...


class _OneProcess:
    main = True

    def any(self, flag: bool, what: str) -> bool:
        return flag


class Session:
    """The bookkeeping around a ``learn`` loop, written once for every trainer::

        with Session(trainer, total_steps, stop_return) as session:
            for stats in session.iterations(callback):
                with session.timed("collect"):
                    ...
                with session.timed("update"):
                    ...
                stats.update(...)

    On entry: the target step, the run's logger (a resumed run drops rows past its checkpoint) and
    ``config.yaml``. Per iteration: the phases' wall time (``collect_seconds``, ``update_seconds``), a row of the
    Progress counters and the trainer's ``stats``, a periodic checkpoint every ``checkpoint_every`` iterations,
    the stop rule (the target step, the callback returned False, or ``stop_return`` reached). On a normal exit:
    the final save to ``run_dir / trainer.final_checkpoint``.

    With a run directory, the session holds its lock (:func:`proxrl.rundir.locked`) and, in the main thread, takes
    SIGINT and SIGTERM: the first signal lets the current iteration finish, saves a checkpoint and raises
    :class:`~proxrl.errors.Interrupted` (a KeyboardInterrupt); a second one interrupts at once.

    Data-parallel (``processes``): only the main process locks, logs and saves; the others run the same loop, and
    a signal or a callback's stop on any process stops them all after the same iteration.
    """

    def __init__(
        self,
        trainer: Trainer,
        total_steps: int | None,
        stop_return: float | None = None,
        processes: Processes | None = None,
    ) -> None:
        self.trainer = trainer
        self.processes = processes if processes is not None else _OneProcess()
        self.writes = trainer.run_dir is not None and self.processes.main  # this process keeps the run directory
        # this process takes part in saves: the writer, and with a sharded model (fsdp) every process
        self.saves = trainer.run_dir is not None and (self.processes.main or trainer.saves_together())
        self.progress = progress = trainer.progress
        cfg = trainer.config
        self.target = cfg.total_steps if total_steps is None else progress.global_step + total_steps
        if self.target <= progress.global_step:
            warnings.warn(
                f"nothing to train: the run is at step {progress.global_step:,} and "
                + (f"total_steps is {cfg.total_steps:,}" if total_steps is None else f"learn({total_steps}) adds none")
                + "; learn(n) trains n steps more",
                RunWarning,
                stacklevel=3,
            )
        self.stop_return = stop_return
        run_dir = trainer.run_dir if self.writes else None
        self._stack = contextlib.ExitStack()
        if run_dir is not None:
            self._stack.enter_context(rundir.locked(run_dir))
            rundir.clean_leftovers(run_dir)
        self.logger = RunLogger(
            run_dir,
            self.target,
            cfg.tensorboard and run_dir is not None,
            trainer.show_progress if self.processes.main else False,
            resume_step=progress.global_step or None,
        )
        if run_dir is not None:
            (run_dir / "config.yaml").write_text(cfgmod.dump(cfg))
        self._start, self._start_step, self._elapsed_before = (
            time.perf_counter(),
            progress.global_step,
            progress.elapsed,
        )
        self._phases: dict[str, Any] = {}  # the current iteration's stats, where timed() adds its seconds
        self._signal: str | None = None  # the name of the first SIGINT/SIGTERM received
        self._saved: Path | None = None  # the checkpoint this iteration wrote, if any

    def __enter__(self) -> Session:
        if self.trainer.run_dir is not None and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous = signal.signal(signum, self._on_signal)
                self._stack.callback(signal.signal, signum, previous)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self.logger.close()
            if kind is None and self.trainer.run_dir is not None:
                final = self.trainer.run_dir / self.trainer.final_checkpoint
                if self.saves:
                    final = self.trainer.save(final)
                if self._signal is not None:  # the signal came in the last iteration: the final save is what is kept
                    raise Interrupted(self._signal, self.progress.global_step, final)
        finally:
            self._stack.close()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signal is not None:
            raise KeyboardInterrupt  # the second signal: stop at once
        self._signal = signal.Signals(signum).name
        print(
            f"\nproxrl: {self._signal}: finishing this iteration and saving a checkpoint (again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def running(self) -> bool:
        """True while the target step is ahead."""
        return self.progress.global_step < self.target

    def iterations(self, callback: Callback | None) -> Iterator[dict[str, Any]]:
        """One fresh ``stats`` dict per iteration while the target step is ahead; after the loop body fills it,
        the iteration is finished (:meth:`finish_iteration`), which may stop the loop."""
        while self.running():
            stats: dict[str, Any] = {}
            self._phases = stats
            yield stats
            stop = self.processes.any(self.finish_iteration(stats, callback), "the stop check")
            if self.processes.any(self._signal is not None, "the stop check") and self._signal is None:
                self._signal = "a signal to another process"  # every process stops after the same iteration
            if stop:
                return
            if self._signal is not None:
                kept = self._saved or (self.trainer.save_checkpoint() if self.saves else self.trainer.run_dir)
                kept = kept or Path("(no run directory)")  # a data-parallel run in Python without one
                raise Interrupted(self._signal, self.progress.global_step, kept)

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the wall time of the block to this iteration's ``<phase>_seconds``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            key = f"{phase}_seconds"
            self._phases[key] = self._phases.get(key, 0.0) + time.perf_counter() - start

    def finish_iteration(self, stats: dict[str, Any], callback: Callback | None) -> bool:
        """Log the iteration's row, checkpoint on cadence, run the callback; True when training should stop."""
        progress, cfg = self.progress, self.trainer.config
        seconds = time.perf_counter() - self._start
        progress.elapsed = self._elapsed_before + seconds
        row = {
            "global_step": progress.global_step,
            "iteration": progress.iteration,
            "episodes": progress.num_episodes,
            "samples": progress.last_samples,
            "time": progress.elapsed,
            "sps": (progress.global_step - self._start_step) / max(seconds, 1e-9),
            "mean_return": progress.mean_return(),
            "mean_length": _mean(progress.recent_lengths),
            **stats,
        }
        self._saved = None
        if self.saves and cfg.checkpoint_every and progress.iteration % cfg.checkpoint_every == 0:
            self._saved = self.trainer.save_checkpoint()
        stop = callback is not None and callback(self.trainer, row) is False
        stop = stop or progress.reached(self.stop_return)
        # log_every (TRL's logging_steps): every n-th row, and the last whatever ends the run
        if stop or progress.iteration % cfg.log_every == 0 or not self.running():
            self.logger.log(row)
        return stop
