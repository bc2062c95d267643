"""A memory task for recurrent policies: a cue shown once must be recalled steps later, which no policy of the
current observation alone can do better than chance. Import ``proxrl.envs.memory_tasks:CueMemory-v0`` to register
it (configs/ppo_lstm_memory.yaml)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CueMemoryEnv(gym.Env[np.ndarray, Any]):
    """Observation ``[signal, query]``: at the first step the signal is the cue (+1 or −1), then 0 for ``delay``
    steps; at the last step ``query`` is 1 and the action (0 for −1, 1 for +1) earns reward 1 if it names the cue,
    else 0. Other steps' actions earn nothing. Return 1 at best, 0.5 by chance (and for any memoryless policy)."""

    def __init__(self, delay: int = 4) -> None:
        self.delay = delay
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A new cue: the first observation shows it."""
        super().reset(seed=seed)
        self.cue = int(self.np_random.integers(2))
        self.t = 0
        return np.array([2.0 * self.cue - 1.0, 0.0], np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Reward 1 at the last step if ``action`` names the cue; the next observation."""
        last = self.t == self.delay + 1
        reward = float(int(action) == self.cue) if last else 0.0
        self.t += 1
        query = float(self.t == self.delay + 1)
        return np.array([0.0, query], np.float32), reward, last, False, {}


# by path, as gymnasium registers its own envs (its EnvCreator type wants a constructor of **kwargs)
gym.register("CueMemory-v0", entry_point="proxrl.envs.memory_tasks:CueMemoryEnv")
