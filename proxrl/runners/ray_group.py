"""Runners as Ray actors (``runners: ray``): transport, placement, timeouts and failures; the assembly of the
batch is :class:`~.group.RunnerGroup`'s. ``import ray`` happens only here.

- ``ray.init()`` starts a local cluster when ``ray_address`` is None (without the dashboard) and joins the cluster
  at ``ray_address`` otherwise; a Ray that is already initialised is used as it is, and left running.
- The runners are placed with a SPREAD placement group, one bundle of ``cpus_per_runner`` CPUs each, so that on a
  cluster they land on different nodes.
- Every iteration the learner puts its weights in the object store once, and each call gets the reference.
- A runner whose process dies mid-call is restarted by Ray (``max_runner_restarts``) and loads the latest weights
  with its next call; a call that takes longer than ``sample_timeout_s`` is abandoned and its runner restarted
  (a hung env would otherwise block the actor forever). Either way the iteration trains on the other fragments.
  A runner that used up its restarts is left out; with none left the run stops with one clear error.
- An exception raised by the env inside a runner (:class:`~proxrl.errors.EnvError`, a non-finite observation)
  stops the run as it does locally: a restart would only meet it again.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import numpy as np

from ..env_config import INSTALL_HINT
from ..errors import ConfigError
from ..errors import RunnersLostError
from . import watchdog
from .group import RunnerGroup, staleness_kept
from .runner import Fragment, Sync

RESTART_WAIT_S = 120.0  # how long an iteration with every runner restarting waits for them
PLACEMENT_TIMEOUT_S = 60.0  # for the runners' CPUs to become free
STATE_TIMEOUT_S = 60.0  # a runner's env state for a checkpoint, or its loading
RETRY_S = 1.0  # async: a lost runner is called again after this long (while Ray restarts it)


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


class RayRunnerGroup(RunnerGroup):
    """``config.num_runners`` :class:`~.runner.EnvRunner` actors on the Ray cluster at ``config.ray_address``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ray = self.ray = import_ray()
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        cfg = self.config
        self.handles: list[Any] = []
        self.placement: Any = None
        self.started_ray = not ray.is_initialized()
        self.watchdog: subprocess.Popen[bytes] | None = None
        if self.started_ray:
            if cfg.ray_address is None:  # a local cluster, which ends with this process however it ends
                self.watchdog = watchdog.guard(lambda: ray.init(include_dashboard=False))
            else:
                ray.init(address=cfg.ray_address)
        self._remove_placement_group = remove_placement_group
        cpus = ray.cluster_resources().get("CPU", 0.0)
        if cpus < cfg.num_runners * cfg.cpus_per_runner:
            self.close()
            raise ConfigError(
                f"{cfg.num_runners} runners × cpus_per_runner={cfg.cpus_per_runner} need "
                f"{cfg.num_runners * cfg.cpus_per_runner:g} CPUs; the Ray cluster has {cpus:g}: "
                "lower num_runners or cpus_per_runner, or add nodes"
            )
        self.placement = placement_group([{"CPU": cfg.cpus_per_runner}] * cfg.num_runners, strategy="SPREAD")
        try:
            ray.get(self.placement.ready(), timeout=PLACEMENT_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise ConfigError(
                f"the Ray cluster could not place {cfg.num_runners} runners of {cfg.cpus_per_runner:g} CPUs within "
                f"{PLACEMENT_TIMEOUT_S:g} s: other actors hold its CPUs (close() a finished trainer), or lower "
                "num_runners or cpus_per_runner"
            ) from None
        remote = ray.remote(num_cpus=cfg.cpus_per_runner, max_restarts=cfg.max_runner_restarts, max_task_retries=0)
        actor_class = remote(self.runner_class)
        self.handles = [
            actor_class.options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.placement, placement_group_bundle_index=r)
            ).remote(cfg, r)
            for r in range(cfg.num_runners)
        ]
        self.lost = [0] * cfg.num_runners  # failures and timeouts per runner: Ray restarted it that often
        self.gone: set[int] = set()  # runners that used up their restarts
        self.restarting: set[int] = set()  # lost, not yet back with a fragment
        self.pending: dict[int, tuple[Any, float]] = {}  # async: each runner's call in flight and when it left
        self.retry_at: dict[int, float] = {}  # async: a lost runner is called again from then on
        self.staleness_now = [0] * (self.config.max_staleness + 1)

    def _restarts_left(self, r: int) -> bool:
        budget = self.config.max_runner_restarts
        return budget < 0 or self.lost[r] <= budget

    def _sample(self, weights: np.ndarray, sync: Sync) -> list[Fragment]:
        if self.config.runner_mode == "async":
            return self._sample_async(weights, sync)
        ray = self.ray
        live = self._live()
        if all(r in self.restarting for r in live):  # nothing else to train on: wait for them to come back
            ray.wait([self.handles[r].pid.remote() for r in live], num_returns=len(live), timeout=RESTART_WAIT_S)
        ref = ray.put(weights)  # once per iteration; every call gets the reference
        calls = {r: self.handles[r].sample.remote(ref, sync) for r in live}
        _, late = ray.wait(list(calls.values()), num_returns=len(calls), timeout=self.config.sample_timeout_s)
        late_ids = {call.hex() for call in late}
        fragments = []
        for r, call in calls.items():
            if call.hex() in late_ids:
                self._abandon(r)
            elif (fragment := self._get(r, call)) is not None:
                fragments.append(fragment)
        return fragments

    def _sample_async(self, weights: np.ndarray, sync: Sync) -> list[Fragment]:
        """``num_runners`` fragments, from whichever runners return first: every runner always has one call in
        flight (a returned one is resubmitted at once with the latest weights), so runners never wait for the
        learner. A fragment acted with weights more than ``max_staleness`` versions old is dropped and counted."""
        ray, cfg = self.ray, self.config
        ref = ray.put(weights)
        kept: list[Fragment] = []
        self.staleness_now = [0] * (cfg.max_staleness + 1)
        while len(kept) < self.num_runners:
            live = self._live()
            now = time.monotonic()
            for r in live:
                if r not in self.pending and self.retry_at.get(r, 0.0) <= now:
                    self.pending[r] = (self.handles[r].sample.remote(ref, sync), now)
            if not self.pending:  # every live runner is restarting: wait for the first to come back
                time.sleep(max(0.0, min(self.retry_at.values()) - now))
                continue
            wait = None  # until the oldest call in flight is past sample_timeout_s
            if cfg.sample_timeout_s is not None:
                wait = max(0.0, min(t0 for _, t0 in self.pending.values()) + cfg.sample_timeout_s - now)
            ready, _ = ray.wait([call for call, _ in self.pending.values()], num_returns=1, timeout=wait)
            ready_ids, now = {call.hex() for call in ready}, time.monotonic()
            for r, (call, t0) in list(self.pending.items()):
                if call.hex() in ready_ids:
                    del self.pending[r]
                    fragment = self._get(r, call)
                    if fragment is not None:
                        self._keep_if_fresh(fragment, sync.version, kept)
                        # at once, even when the batch is complete: the runner acts while the learner updates
                        self.pending[r] = (self.handles[r].sample.remote(ref, sync), time.monotonic())
                elif cfg.sample_timeout_s is not None and now - t0 > cfg.sample_timeout_s:
                    del self.pending[r]
                    self._abandon(r)
        return kept[: self.num_runners]

    def _live(self) -> list[int]:
        """The runners not given up on; none left stops the run (after releasing the group)."""
        live = [r for r in range(self.num_runners) if r not in self.gone]
        if not live:
            self.close()
            raise RunnersLostError(
                f"every runner is gone (each failed more than max_runner_restarts={self.config.max_runner_restarts} "
                "times); training stopped, the last checkpoint is kept"
            )
        return live

    def _abandon(self, r: int) -> None:
        """Runner ``r``'s call is past ``sample_timeout_s``: kill it so Ray restarts it (a hung call would block
        the actor for ever), and count it."""
        self.ray.kill(self.handles[r], no_restart=False)
        self.timed_out += 1
        self.lost_fragments += 1
        self._lose(r)
        self.retry_at[r] = time.monotonic() + RETRY_S

    def _get(self, r: int, call: Any) -> Fragment | None:
        """The fragment of runner ``r``'s finished ``call``, or None if its process was lost (then counted)."""
        ray = self.ray
        try:
            fragment: Fragment = ray.get(call)
        except ray.exceptions.RayActorError as e:
            if r not in self.restarting:  # lost mid-call: Ray restarts it while restarts remain
                self.failures += 1
                self._lose(r)
            elif not isinstance(e, ray.exceptions.ActorUnavailableError):  # Ray gave up on it
                self.gone.add(r)
            self.retry_at[r] = time.monotonic() + RETRY_S
            self.lost_fragments += 1
            return None
        self.restarting.discard(r)
        return fragment

    def _keep_if_fresh(self, fragment: Fragment, version: int, kept: list[Fragment]) -> None:
        staleness = staleness_kept(version, fragment.version, self.config.max_staleness)
        if staleness is None:
            self.dropped_stale += 1
        else:
            self.staleness_now[staleness] += 1
            kept.append(fragment)

    def report(self) -> dict[str, float]:
        """The runners' health and, in async mode, how stale this batch's fragments were (a count per number of
        updates behind, 0 … max_staleness) and how many were dropped so far."""
        row = super().report()
        if self.config.runner_mode == "async":
            counts = self.staleness_now
            row["stale_dropped"] = float(self.dropped_stale)
            row["staleness_mean"] = sum(k * c for k, c in enumerate(counts)) / max(1, sum(counts))
            row.update({f"staleness_{k}": float(c) for k, c in enumerate(counts)})
        return row

    def _lose(self, r: int) -> None:
        self.lost[r] += 1
        self.restarting.add(r)
        if self._restarts_left(r):
            self.restarts += 1  # Ray restarts it (max_restarts = max_runner_restarts)
        else:
            self.gone.add(r)

    def _states(self) -> list[dict[str, Any] | None]:
        states: list[dict[str, Any] | None] = []
        for r, h in enumerate(self.handles):
            try:
                states.append(None if r in self.gone else self.ray.get(h.state.remote(), timeout=STATE_TIMEOUT_S))
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError):
                states.append(None)  # a lost runner's envs start clean on resume, as they do after its restart
        return states

    def _load_states(self, states: list[dict[str, Any] | None]) -> None:
        calls = [h.load_state.remote(state) for h, state in zip(self.handles, states, strict=True)]
        self.ray.get(calls, timeout=STATE_TIMEOUT_S)

    def pids(self) -> list[int]:
        """The runners' process ids (tests kill one)."""
        pids: list[int] = self.ray.get([h.pid.remote() for h in self.handles], timeout=STATE_TIMEOUT_S)
        return pids

    def nodes(self) -> list[str | None]:
        """The Ray node of each runner."""
        nodes: list[str | None] = self.ray.get([h.node.remote() for h in self.handles], timeout=STATE_TIMEOUT_S)
        return nodes

    def close(self) -> None:
        """Kill the runners and their placement group; shut Ray down if this group started it."""
        ray = self.ray
        self.closed = True
        for h in self.handles:
            ray.kill(h, no_restart=True)
        self.handles = []
        if self.placement is not None:
            self._remove_placement_group(self.placement)
            self.placement = None
        if self.started_ray and ray.is_initialized():
            if self.watchdog is not None:  # a local cluster of this process's (not one it joined)
                watchdog.end_autoscaler_monitor()
            ray.shutdown()
        watchdog.stop(self.watchdog)  # it kills whatever of the local cluster outlived the shutdown
        self.watchdog = None
