"""``proxrl_bench/CostlyCartPole-v0``: CartPole whose every ``step`` (and ``reset``) also burns ``cost_ms``
milliseconds of this thread's CPU time, so that stepping the envs, not the learner, dominates an iteration (a
stand-in for a MuJoCo or simulator step). For ``benchmarks/ray_scaling.py``:

    PPO("_costly_env:proxrl_bench/CostlyCartPole-v0", env_kwargs={"cost_ms": 1.0}, ...)

The cost is a busy loop on ``time.thread_time_ns`` (CPU time, not wall time): the work is the same whether the core
is shared or not, and it occupies a core as a real simulator would (``time.sleep`` would free it, and N envs would
"step" in parallel on one core). ``benchmarks/`` must be on ``PYTHONPATH`` wherever the env is built (Ray workers
included).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

ENV_ID = "proxrl_bench/CostlyCartPole-v0"


def burn_cpu(ns: int) -> None:
    """Busy-wait until this thread has used ``ns`` more nanoseconds of CPU time."""
    if ns <= 0:
        return
    end = time.thread_time_ns() + ns
    while time.thread_time_ns() < end:
        pass


class CostlyCartPole(CartPoleEnv):
    """CartPole-v1 with a fixed CPU cost of ``cost_ms`` per ``step`` (and per ``reset``)."""

    def __init__(self, cost_ms: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cost_ns = int(cost_ms * 1e6)

    def step(self, action: Any) -> Any:
        burn_cpu(self.cost_ns)
        return super().step(action)

    def reset(self, **kwargs: Any) -> Any:
        burn_cpu(self.cost_ns)
        return super().reset(**kwargs)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=CostlyCartPole, max_episode_steps=500, reward_threshold=475.0)
