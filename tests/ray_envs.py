"""Environments that fail inside a runner, for the Ray tests: ``proxrl_test/FailOnce-v0`` is CartPole whose env
that first reaches step ``at`` (of all the run's envs: a flag file decides, created exclusively) SIGKILLs its own
process (``fail="kill"``) or hangs for an hour (``fail="hang"``); every other env, and every later one, is plain
CartPole."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class FailOnce(CartPoleEnv):
    def __init__(self, flag: str, fail: str = "kill", at: int = 30, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.flag, self.fail, self.at, self.steps = flag, fail, at, 0

    def step(self, action: Any) -> Any:
        self.steps += 1
        if self.steps == self.at and self._first():
            if self.fail == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)
        return super().step(action)

    def _first(self) -> bool:
        try:
            os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True


gym.register("proxrl_test/FailOnce-v0", entry_point=FailOnce, max_episode_steps=500)


_SLOW_PROCESS: bool | None = None  # this process holds the slow runner (decided once, by the first env built)


class SlowInOneProcess(CartPoleEnv):
    """CartPole whose envs in one process (the first to create ``flag``) sleep ``delay`` s per step: that runner's
    fragments arrive late, and in async mode grow stale."""

    def __init__(self, flag: str, delay: float = 0.02, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        global _SLOW_PROCESS
        if _SLOW_PROCESS is None:
            try:
                os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                _SLOW_PROCESS = True
            except FileExistsError:
                _SLOW_PROCESS = False
        self.delay = delay if _SLOW_PROCESS else 0.0

    def step(self, action: Any) -> Any:
        if self.delay:
            time.sleep(self.delay)
        return super().step(action)


gym.register("proxrl_test/SlowInOne-v0", entry_point=SlowInOneProcess, max_episode_steps=500)
