"""Cooperative matrix games as PettingZoo ``ParallelEnv``s: two agents act once, both receive payoff[a0, a1].

They isolate what multi-agent methods can represent. In ``penalty`` the best joint actions need the agents to act
*differently*, which two copies of one shared policy without an agent id cannot do reliably; the ``climbing``
game (Claus & Boutilier 1998) has its optimum 11 next to −30 penalties, which pulls independent learners to the
safe 7 or 5. ``proxrl train happo --env proxrl.envs.matrix_games --env-kwargs game=climbing``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

GAMES: dict[str, list[list[float]]] = {
    "penalty": [[0.0, 1.0], [1.0, 0.0]],  # best: different actions (0, 1) or (1, 0)
    "climbing": [[11.0, -30.0, 0.0], [-30.0, 7.0, 6.0], [0.0, 0.0, 5.0]],
}
# PettingZoo's parallel step: observations, rewards, terminations, truncations and infos, by agent
Step = tuple[dict[str, np.ndarray], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]]


class MatrixGame(ParallelEnv):  # type: ignore[misc]  # pettingzoo's ParallelEnv is Any here (no type information)
    """One-step two-agent cooperative game; observations are a constant 1 (there is nothing to observe)."""

    metadata = {"name": "matrix_game_v0", "render_modes": []}

    def __init__(self, game: str = "penalty", payoff: list[list[float]] | None = None) -> None:
        if payoff is None and game not in GAMES:
            from ..errors import ConfigError

            raise ConfigError(f"unknown matrix game '{game}'; choose from {sorted(GAMES)} or pass payoff=")
        self.payoff = np.asarray(payoff if payoff is not None else GAMES[game], dtype=np.float32)
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self.render_mode = None
        self._obs_space = spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
        self._action_spaces = {a: spaces.Discrete(self.payoff.shape[i]) for i, a in enumerate(self.possible_agents)}

    def observation_space(self, agent: str) -> spaces.Box:
        """A constant 1."""
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        """The agent's row (agent_0) or column (agent_1) of the payoff matrix."""
        return self._action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Both agents' observation (a constant 1)."""
        self.agents = list(self.possible_agents)
        return {a: np.ones(1, dtype=np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> Step:
        """Both agents' payoff[a0, a1]; the episode ends (terminated) after this one step."""
        r = float(self.payoff[int(actions["agent_0"]), int(actions["agent_1"])])
        obs = {a: np.ones(1, dtype=np.float32) for a in self.agents}
        out: Step = (
            obs,
            {a: r for a in self.agents},
            {a: True for a in self.agents},
            {a: False for a in self.agents},
            {a: {} for a in self.agents},
        )
        self.agents = []
        return out

    def state(self) -> np.ndarray:
        """The global state: a constant 1, as the observations."""
        return np.ones(1, dtype=np.float32)


def parallel_env(game: str = "penalty", payoff: list[list[float]] | None = None) -> MatrixGame:
    """The PettingZoo-style constructor proxrl calls for ``--env proxrl.envs.matrix_games``."""
    return MatrixGame(game, payoff)
