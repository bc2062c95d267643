"""PettingZoo's turn-based classic games, each copy recording what the env paid every player per game (the ground
truth of the reward-credit tests). Loaded by module path as ``credit_games`` with ``env_kwargs={"game": ...}``."""

from __future__ import annotations

import importlib
from typing import Any

from pettingzoo.utils.wrappers import BaseWrapper


class RecordingGame(BaseWrapper):
    """A classic game whose ``games`` list holds, per finished game, ``{agent: Σ reward}`` summed from the env's
    ``rewards`` after every live move (``_cumulative_rewards`` restarts at each of a player's turns)."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.games: list[dict[str, float]] = []
        self.totals: dict[str, float] = {}

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        super().reset(seed=seed, options=options)
        self.totals = dict.fromkeys(self.possible_agents, 0.0)

    def step(self, action: Any) -> None:
        mover = self.agent_selection
        dead = self.terminations[mover] or self.truncations[mover]
        super().step(action)
        if not dead:
            for agent, reward in self.rewards.items():
                self.totals[agent] += float(reward)
        if not self.agents:
            self.games.append(dict(self.totals))


def env(game: str = "connect_four_v3", **kwargs: Any) -> RecordingGame:
    return RecordingGame(importlib.import_module(f"pettingzoo.classic.{game}").env(**kwargs))
