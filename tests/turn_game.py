"""A two-player turn-based (AEC) PettingZoo game for the multi-agent tests, recording every move.

Players alternate, "first" moving first; a game lasts ``length`` moves and then terminates (or, with
``truncate=True``, is cut by a time limit). The mover is rewarded at once with 1 + its action (0 or 1).
Observations and the global state are (moves made + 1) / 10. Loaded by module path as ``turn_game``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv

MOVES: list[dict] = []  # one record per move: state, agent, action, reward, terminated, truncated, next_state


class TurnGame(AECEnv):
    metadata = {"name": "turn_game_v0", "render_modes": [], "is_parallelizable": False}

    def __init__(self, length: int = 3, truncate: bool = False) -> None:
        super().__init__()
        self.possible_agents = ["first", "second"]
        self.length, self.truncate = length, truncate
        self.render_mode = None
        self.moves = 0
        self._obs_space, self._act_space = spaces.Box(0.0, 10.0, (1,), np.float32), spaces.Discrete(2)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def observe(self, agent: str) -> np.ndarray:
        return self.state()

    def state(self) -> np.ndarray:
        return np.array([(self.moves + 1) / 10], dtype=np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        self.agents = list(self.possible_agents)
        self.moves = 0
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {a: {} for a in self.agents}

        self.agent_selection = "first"

    def step(self, action: int | None) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        state = float(self.state()[0])
        self._cumulative_rewards[agent] = 0.0
        self._clear_rewards()
        self.rewards[agent] = 1.0 + int(action)
        self.moves += 1
        ended = self.moves >= self.length
        if ended:
            flags = self.truncations if self.truncate else self.terminations
            for a in self.agents:
                flags[a] = True
        MOVES.append(
            {
                "state": state,
                "agent": agent,
                "action": int(action),
                "reward": 1.0 + int(action),
                "terminated": ended and not self.truncate,
                "truncated": ended and self.truncate,
                "next_state": float(self.state()[0]),
            }
        )
        self._accumulate_rewards()
        self.agent_selection = self.possible_agents[self.moves % 2]  # (no AgentSelector: a snapshot keeps ints)


def env(length: int = 3, truncate: bool = False) -> TurnGame:
    return TurnGame(length, truncate)
