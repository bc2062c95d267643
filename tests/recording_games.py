"""A two-agent PettingZoo ParallelEnv for the multi-agent equation tests: it records every step it is stepped with,
so a test knows exactly which samples a trainer learned from and can redo its update by hand.

Each agent gets its own payoff ``payoffs[i][a_0][a_1]`` every step; an episode lasts ``length`` steps and then
terminates (``terminate=True``) or is truncated. Observations and the global state are (t = steps taken
in the episode) as (t + 1) / 10, so V(s) differs from step to step. Loaded by module path as ``recording_games``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

STEPS: list[dict] = []  # one record per env step: state, actions, rewards, terminated, truncated, next_state


class RecordingGame(ParallelEnv):
    metadata = {"name": "recording_game_v0", "render_modes": []}

    def __init__(self, payoffs: list, length: int = 1, terminate: bool | str = True) -> None:
        self.payoffs = np.asarray(payoffs, dtype=np.float32)  # [2, n_0, n_1]
        self.length, self.terminate = length, terminate  # "mixed": agent_0 terminates as agent_1 is truncated
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self.render_mode = None
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(0.0, 10.0, (1,), np.float32)

    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(self.payoffs.shape[1 + self.possible_agents.index(agent)])

    def state(self) -> np.ndarray:
        return np.array([(self.t + 1) / 10], dtype=np.float32)

    def _obs(self) -> dict:
        return {a: self.state() for a in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents, self.t = list(self.possible_agents), 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        a = (int(actions["agent_0"]), int(actions["agent_1"]))
        state = float(self.state()[0])
        self.t += 1
        ended = self.t >= self.length
        rewards = {name: float(self.payoffs[i][a]) for i, name in enumerate(self.possible_agents)}
        mixed = self.terminate == "mixed"
        terms = {name: ended and (name == "agent_0" if mixed else bool(self.terminate)) for name in self.agents}
        truncs = {name: ended and not terms[name] for name in self.agents}
        team_terminated = ended and all(terms.values())  # the team's episode ends terminated only if every agent's does
        STEPS.append(
            {
                "state": state,
                "actions": a,
                "rewards": (rewards["agent_0"], rewards["agent_1"]),
                "terminated": team_terminated,
                "truncated": ended and not team_terminated,
                "next_state": float(self.state()[0]),
            }
        )
        obs, infos = self._obs(), {name: {} for name in self.agents}
        if ended:
            self.agents = []
        return obs, rewards, terms, truncs, infos


def parallel_env(payoffs: list, length: int = 1, terminate: bool | str = True) -> RecordingGame:
    return RecordingGame(payoffs, length, terminate)


class SoloBandit(ParallelEnv):
    """One agent, one state (obs [1]), three actions with rewards ``PAYOFF``, one-step episodes: the PettingZoo twin
    of ``toy_envs.RecordingBandit``, recording (action, reward) in ``SOLO_STEPS``."""

    metadata = {"name": "solo_bandit_v0", "render_modes": []}
    PAYOFF = (1.0, 0.0, -0.5)

    def __init__(self) -> None:
        self.possible_agents = ["solo"]
        self.agents: list[str] = []
        self.render_mode = None
        self._obs, self._act = spaces.Box(-1.0, 1.0, (1,), np.float32), spaces.Discrete(3)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents = ["solo"]
        return {"solo": np.ones(1, np.float32)}, {"solo": {}}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        reward = self.PAYOFF[int(actions["solo"])]
        SOLO_STEPS.append((int(actions["solo"]), reward))
        self.agents = []
        return ({"solo": np.ones(1, np.float32)}, {"solo": reward}, {"solo": True}, {"solo": False}, {"solo": {}})


SOLO_STEPS: list[tuple[int, float]] = []
