"""A group of runners behind the surface a trainer's :class:`~proxrl.rollout.Rollout` has (``collect`` → a
:class:`~proxrl.rollout.Batch`, ``episodes``, ``steps_taken``, ``env_steps``, ``obs``, ``report``), so a trainer
does not know whether its envs step here or on a cluster.

One ``collect``: bump the weights' version, send every runner the weights and a :class:`~.runner.Sync`, and
concatenate the fragments that came back in runner order: columns r·M … r·M + M − 1 are runner r's envs, and the
finished episodes are listed by (row, global env index), the order the local runner lists them in. A fragment is
used whole or not at all; an iteration that lost a runner trains on the others' columns (the step count is what was
collected), and one with no fragment at all stops the run with :class:`~proxrl.errors.RunnersLostError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import ResumeWarning, RunnersLostError
from ..rollout import Batch, EpisodeStats
from .normalizers import added_moments, merge_added
from .runner import EnvRunner, Fragment, Runner, Sync

if TYPE_CHECKING:  # the configs' module imports the runner groups
    from ..env_config import RolloutConfig


def staleness_kept(version: int, acted_with: int, max_staleness: int) -> int | None:
    """How many updates old a fragment acted with weights version ``acted_with`` is when the learner holds
    ``version`` (the staleness k), or None when it is to be dropped: more than ``max_staleness`` (K) versions old.
    A fragment exactly K versions old is kept (``staleness_K`` counts it)."""
    staleness = version - acted_with
    return staleness if staleness <= max_staleness else None


class RunnerGroup:
    """The learner's side of ``config.num_runners`` runners (subclasses say how a fragment is fetched)."""

    def __init__(
        self,
        config: RolloutConfig,
        weights: Callable[[], np.ndarray],
        acting_rng: np.random.Generator | None,
        device: torch.device,
        global_step: int,
        normalizers: dict[str, Any] | None = None,
        runner_class: type[Runner] = EnvRunner,
        batch_class: type[Batch] = Batch,
    ) -> None:
        self.config, self.weights, self.acting_rng, self.device = config, weights, acting_rng, device
        # gymnasium envs, or PettingZoo copies: the multi-agent trainer passes MultiAgentBatch (through
        # EnvTrainer.start_runners' untyped ``type``), and collect returns one of those
        self.runner_class, self.batch_class = runner_class, batch_class
        self.normalizers = dict(normalizers or {})  # the run's normalisation statistics, merged from the runners
        self.num_runners = config.num_runners
        self.envs_per_runner = config.num_envs // config.num_runners
        self.version = 0
        self.episodes = EpisodeStats()
        self.env_steps = self.start_step = global_step
        self.steps_taken = 0
        self.obs: np.ndarray | None = None
        self.failures = 0  # runner processes lost mid-call (each restarted by Ray while restarts remain)
        self.timed_out = 0  # calls that exceeded sample_timeout_s (their runner is restarted)
        self.restarts = 0  # runners Ray restarted after a failure or a timeout
        self.lost_fragments = 0  # calls that returned no fragment (a failure, a timeout, a runner restarting)
        self.dropped_stale = 0  # async: fragments dropped as more than max_staleness versions old
        self.last_runners = self.num_runners  # runners whose fragment the last batch holds
        self.closed = False

    def _sample(self, weights: np.ndarray, sync: Sync) -> list[Fragment]:
        """The fragments of every runner that returned one (any order)."""
        raise NotImplementedError

    def collect(self, episodic: bool = False) -> Batch:
        """One rollout from every runner, as one batch ``[T, N'·M]`` over the N' runners that returned."""
        self.version += 1
        acting = None if self.acting_rng is None else self.acting_rng.bit_generator.state
        sync = Sync(self.version, acting, self.env_steps, episodic, self.normalizers)
        fragments = sorted(self._sample(self.weights(), sync), key=lambda f: f.index)
        if not fragments:
            self.close()  # release the runners and their CPUs: the trainer cannot go on with them
            raise RunnersLostError(
                f"no runner returned a rollout (in all: {self.failures} runner failures, {self.timed_out} calls past "
                f"sample_timeout_s={self.config.sample_timeout_s}, max_runner_restarts="
                f"{self.config.max_runner_restarts}); training stopped, the last checkpoint is kept. Check the "
                "runners' logs; raise sample_timeout_s or max_runner_restarts"
            )
        self.last_runners = len(fragments)
        problems = sorted({f.resume_problem for f in fragments if f.resume_problem})
        if problems:
            warnings.warn(
                f"resume: the runners' envs cannot be put back exactly ({'; '.join(problems)}); they start from a "
                f"clean reset with seed {self.config.seed + sync.global_step} (+ env index)",
                ResumeWarning,
                stacklevel=2,
            )
        if self.acting_rng is not None:  # every runner drew the same numbers; the longest stepper's state is next
            state = max(fragments, key=lambda f: f.steps_taken).acting_rng
            assert state is not None  # a runner given the acting generator's state returns it
            self.acting_rng.bit_generator.state = state
        stats = [frag.normalizers for frag in fragments if frag.normalizers is not None]
        if stats:  # what each runner's envs added, folded into the run's statistics
            base = self.normalizers or stats[0][0]
            self.normalizers = merge_added(base, [added_moments(after, before) for before, after in stats])
        # a Tensor per field, or None for a field the multi-agent batch leaves out (the runners sent none)
        columns: dict[str, Any] = {f.name: self._column_stack(fragments, f.name) for f in fields(self.batch_class)}
        batch = self.batch_class(**columns)
        self._merge_episodes(fragments)
        self.obs = np.concatenate([frag.obs for frag in fragments])
        self.steps_taken = sum(frag.steps_taken for frag in fragments)
        self.env_steps += self.steps_taken
        return batch

    def layout(self) -> dict[str, int]:
        """How the run's envs are split: a checkpoint's runner states fit only the same layout."""
        return {"num_runners": self.num_runners, "envs_per_runner": self.envs_per_runner}

    def state(self) -> dict[str, Any]:
        """The layout, the seed each runner's envs started from (env j of runner r: that + j) and each runner's env
        state (None for a runner that has none), for an exact resume."""
        seeds = [self.config.seed + self.start_step + r * self.envs_per_runner for r in range(self.num_runners)]
        return {"layout": self.layout(), "seeds": seeds, "runners": self._states()}

    def load_state(self, saved: dict[str, Any]) -> None:
        """Give each runner its saved env state, put back when its envs start; a checkpoint of another layout (or
        of the local runner) says so once, and the envs start from a clean seeded reset."""
        if saved.get("layout") != self.layout():
            was = saved.get("layout") or (
                f"the local runner's {saved['num_envs']} envs" if "num_envs" in saved else "the local collector"
            )
            warnings.warn(
                f"resume: the checkpoint's envs were stepped by {was}, this run by {self.layout()}; they start from "
                f"a clean reset with seed {self.config.seed + self.env_steps} (+ env index)",
                ResumeWarning,
                stacklevel=2,
            )
            return
        self._load_states(saved["runners"])

    def _states(self) -> list[dict[str, Any] | None]:
        raise NotImplementedError

    def _load_states(self, states: list[dict[str, Any] | None]) -> None:
        raise NotImplementedError

    def _column_stack(self, fragments: list[Fragment], name: str) -> torch.Tensor | None:
        """One field of the batch: the fragments' arrays side by side along the env axis (axis 1)."""
        if fragments[0].arrays[name] is None:
            return None
        return torch.from_numpy(np.concatenate([frag.arrays[name] for frag in fragments], axis=1)).to(self.device)

    def _merge_episodes(self, fragments: list[Fragment]) -> None:
        """The finished episodes by (row, global env index), the order the local runner lists them in (runner
        order where a runner does not say where its episodes ended)."""
        m = self.envs_per_runner
        ended = []
        for frag in fragments:
            self.episodes.agent_returns.extend(frag.agent_returns or [])  # (multi-agent: the zero-sum check's)
            where = frag.ended_at if frag.ended_at is not None else [(-1, 0)] * len(frag.returns)
            for (row, env), ret, length in zip(where, frag.returns, frag.lengths, strict=True):
                ended.append((row, frag.index * m + env, ret, length))
        for row, env, ret, length in sorted(ended, key=lambda e: (e[0], e[1])):
            self.episodes.returns.append(ret)
            self.episodes.lengths.append(length)
            self.episodes.ended_at.append((row, env))

    def report(self) -> dict[str, float]:
        """The runners' health for the log row: failures and timeouts so far, runners in the last batch."""
        return {
            "runner_failures": float(self.failures),
            "runner_timeouts": float(self.timed_out),
            "runners": float(self.last_runners),
        }

    def health_line(self) -> str:
        """The final summary's line on the runners: failures, timeouts, restarts and dropped fragments, or that
        there were none (so a run that lost runners never ends with a clean run's summary)."""
        head = f"runners: {self.num_runners} × {self.envs_per_runner} envs"
        dropped = self.lost_fragments + self.dropped_stale
        if not (self.failures or self.timed_out or self.restarts or dropped):
            return f"{head}, no failures, timeouts, restarts or dropped fragments"
        return (
            f"{head}: {_count(self.failures, 'runner failure')}, {_count(self.timed_out, 'timeout')} (past "
            f"sample_timeout_s={self.config.sample_timeout_s}), {_count(self.restarts, 'restart')}, "
            f"{_count(dropped, 'fragment')} dropped ({self.lost_fragments} lost, {self.dropped_stale} stale); "
            f"{self.last_runners} of {self.num_runners} runners in the last batch"
        )

    def close(self) -> None:
        """Stop the runners."""
        self.closed = True


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


class InProcessGroup(RunnerGroup):
    """The runners as plain objects in this process: the group's assembly without a cluster (for tests and
    checks of the sharding; it is no faster than the local runner)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runners: list[Runner] = [self.runner_class(self.config, r) for r in range(self.num_runners)]

    def _sample(self, weights: np.ndarray, sync: Sync) -> list[Fragment]:
        return [runner.sample(weights, sync) for runner in self.runners]

    def _states(self) -> list[dict[str, Any] | None]:
        return [runner.state() for runner in self.runners]

    def _load_states(self, states: list[dict[str, Any] | None]) -> None:
        for runner, state in zip(self.runners, states, strict=True):
            runner.load_state(state)

    def close(self) -> None:
        for runner in self.runners:
            runner.close()
        self.closed = True
