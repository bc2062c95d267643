"""A tiny PettingZoo ParallelEnv for tests: two heterogeneous agents, one of which leaves the episode early.

``early`` (obs width 2, Box actions of size 1) terminates after 2 steps; ``late`` (obs width 3) keeps going until
step 5, where it is truncated. Each agent's reward is 1 per step. ``proxrl.marl.envs`` loads it as
``toy_pettingzoo`` (the tests directory is on sys.path).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class EarlyExit(ParallelEnv):
    metadata = {"name": "early_exit_v0", "render_modes": []}

    def __init__(self, box: bool = False) -> None:
        self.possible_agents = ["early", "late"]
        self.agents: list[str] = []
        self.render_mode = None
        self._obs = {"early": spaces.Box(-10, 10, (2,), np.float32), "late": spaces.Box(-10, 10, (3,), np.float32)}
        act = spaces.Box(-1, 1, (1,), np.float32) if box else spaces.Discrete(2)
        self._act = {"early": act, "late": act if box else spaces.Discrete(3)}
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._act[agent]

    def _observe(self) -> dict[str, np.ndarray]:
        return {a: np.full(self._obs[a].shape, self.t, np.float32) for a in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents, self.t = list(self.possible_agents), 0
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        self.t += 1
        rewards = {a: 1.0 for a in self.agents}
        terms = {a: a == "early" and self.t >= 2 for a in self.agents}
        truncs = {a: a == "late" and self.t >= 5 for a in self.agents}
        obs, infos = self._observe(), {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return obs, rewards, terms, truncs, infos


def parallel_env(box: bool = False) -> EarlyExit:
    return EarlyExit(box)
