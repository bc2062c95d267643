"""A PettingZoo team version of ``PixelShape-v0`` (``pixel_tasks.py``), for the multi-agent trainers' CNN: each
of ``n_agents`` agents sees its own 36 × 36 uint8 frame with a 6 × 6 shape somewhere in it and says whether it is a
filled square (0) or a hollow ring (1); reward 1 for a right answer, 8 frames an episode (team return 8·n at best,
4·n by chance). ``proxrl train mappo --env proxrl.envs.pixel_team`` (configs/mappo_pixels.yaml)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from .pixel_tasks import PixelTargetEnv


class PixelTeamEnv(ParallelEnv):  # type: ignore[misc]  # pettingzoo's ParallelEnv is Any here (no type information)
    """``n_agents`` PixelShape frames at once, one per agent, with one episode clock."""

    metadata = {"name": "pixel_team_v0", "is_parallelizable": True}

    def __init__(self, n_agents: int = 2, episode_length: int = 8) -> None:
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        self.episode_length = episode_length
        self._tasks = {a: PixelTargetEnv(task="shape") for a in self.possible_agents}

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        """A 36 × 36 × 1 uint8 frame."""
        return self._tasks[agent].observation_space

    def action_space(self, agent: str) -> spaces.Space[Any]:
        """0: square, 1: ring."""
        return self._tasks[agent].action_space

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Every agent's first frame."""
        self.agents, self.t = list(self.possible_agents), 0
        seeds: list[int | None] = [None] * len(self.agents)
        if seed is not None:  # one independent stream per agent
            seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(len(self.agents))]
        obs = {a: self._tasks[a].reset(seed=s)[0] for a, s in zip(self.agents, seeds, strict=True)}
        return obs, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        """Each agent's reward for its answer and its next frame; every agent is truncated after the last frame."""
        obs, rewards = {}, {}
        for a in self.agents:
            obs[a], rewards[a], _, _, _ = self._tasks[a].step(actions[a])
        self.t += 1
        over = self.t >= self.episode_length
        truncated = {a: over for a in self.agents}
        terminated = {a: False for a in self.agents}
        infos: dict[str, dict[str, Any]] = {a: {} for a in self.agents}
        if over:
            self.agents = []
        return obs, rewards, terminated, truncated, infos


def parallel_env(**kwargs: Any) -> PixelTeamEnv:
    """The environment, as PettingZoo modules name their constructor."""
    return PixelTeamEnv(**kwargs)
