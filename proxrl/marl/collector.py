"""The multi-agent collector: N copies of a PettingZoo env stepped with a :class:`MultiAgentActorCritic` into one
:class:`~proxrl.marl.batch.MultiAgentBatch` of ``num_steps`` rows per call. It holds the copies, their buffers and
their episodes, and acts; how a row is stepped is the env's API, chosen once at construction: :mod:`.parallel`
(``ParallelEnv``: every live agent acts each row) or :mod:`.aec` (``AECEnv``: one agent per row, rewards credited
across turns). A finished copy is reset at once.

Its plain attributes (episode counters, the turn-based bookkeeping, the observations under way) are what an env
snapshot saves beside the envs for an exact resume (``envs/snapshot.py``): their names are a checkpoint's keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from ..policies.multiagent_actor_critic import MultiAgentActorCritic
from ..rollout import EpisodeStats
from . import aec, parallel
from .batch import MultiAgentBatch, RolloutBuffers
from .envs import AgentSpec, split_observation


class MultiAgentCollector:
    """Steps N copies of a PettingZoo env with a :class:`MultiAgentActorCritic`, ``num_steps`` rows per call."""

    def __init__(
        self,
        kind: str,
        make_env: Callable[[], Any],
        spec: AgentSpec,
        policy: MultiAgentActorCritic,
        num_envs: int,
        num_steps: int,
        seed: int,
        device: torch.device,
        deterministic: bool = False,
    ) -> None:
        self.kind, self.spec, self.policy, self.device = kind, spec, policy, device
        self._collect_rows = parallel.collect_rows if kind == "parallel" else aec.collect_rows  # the env's API
        self.deterministic = deterministic  # act with the mode of π (evaluation)
        self.envs = [make_env() for _ in range(num_envs)]
        self.num_steps = num_steps
        self.steps_taken = 0
        self.index = {name: i for i, name in enumerate(spec.names)}
        box = spec.action_spaces[0]
        self.box_dim = int(box.shape[0]) if isinstance(box, spaces.Box) else None
        n, a = num_envs, len(spec.names)
        # AEC: one row per agent before the steps, for the actions the last rollout held back (aec.py)
        self.carry = a if kind == "aec" else 0
        self.buf = RolloutBuffers(num_steps, num_envs, spec, self.box_dim, self.carry)
        self.episodes = EpisodeStats()
        self.seed = seed
        self._episode_count = 0
        self._ep_return = np.zeros((n, a))
        self._ep_length = np.zeros(n, dtype=np.int64)
        self._last_row = np.full((n, a), -1)  # AEC: the row of each agent's last action, for reward credit
        self._last_move = np.full(n, -1)  # AEC: the row of each copy's last action (any agent), for the game's end
        self._credited = np.zeros((n, a))  # AEC: reward already credited ahead of the agent's next turn
        # AEC: each agent's action still awaiting its reward at the rollout's end (its row there, -1: none) and that
        # row's contents, carried into the next rollout (plain arrays, so an env snapshot keeps them)
        b = self.buf
        self._held_row = np.full((n, a), -1)
        self._held_obs = np.zeros((n, a, *b.obs.shape[2:]), b.obs.dtype)  # [N, A, A, D]: the row an agent acted in
        self._held_state = np.zeros((n, a, b.state.shape[2]), np.float32)
        self._held_masks = None if b.masks is None else np.ones((n, a, *b.masks.shape[2:]), bool)
        self._held_action, self._held_logp = np.zeros((n, *b.actions.shape[2:]), b.actions.dtype), np.zeros((n, a))
        self._obs: list[dict[str, Any]] = [self.reset_copy(i) for i in range(n)]

    # ------------------------------------------------------------ what parallel.py and aec.py step with
    def reset_copy(self, i: int) -> dict[str, Any]:
        """Reset copy i with its next seed and start its episode's bookkeeping; a parallel env's observations."""
        self._episode_count += 1
        out = self.envs[i].reset(seed=self.seed + 7919 * self._episode_count + i)
        self._ep_return[i] = 0.0
        self._ep_length[i] = 0
        self._last_row[i] = -1
        self._last_move[i] = -1
        self._credited[i] = 0.0
        self._held_row[i] = -1
        return out[0] if self.kind == "parallel" else {}

    def finish_episode(self, i: int) -> None:
        """Log copy i's finished episode (team return, length, each agent's return)."""
        self.episodes.returns.append(float(self._ep_return[i].sum()))
        self.episodes.lengths.append(int(self._ep_length[i]))
        self.episodes.agent_returns.append(self._ep_return[i].tolist())

    def write_obs(self, agent_obs: dict[str, Any], obs_rows: np.ndarray, mask_rows: np.ndarray | None) -> None:
        """Flatten each agent's observation into its zero-padded row of ``obs_rows`` ``[A, D]`` (and its action mask
        into ``mask_rows`` ``[A, n]``)."""
        for name, o in agent_obs.items():
            flat, mask = split_observation(o)
            k = self.index[name]
            obs_rows[k, : flat.size] = flat
            if mask is not None and mask_rows is not None:
                mask_rows[k, : mask.size] = mask.astype(bool)

    def state_row(self, env: Any, obs_rows: np.ndarray) -> np.ndarray:
        """The central critic's input for an env whose agents' rows are ``obs_rows`` ``[A, D]``: env.state(), or
        the rows concatenated (nothing for images: the critic reads the observations)."""
        if self.spec.state_dim == 0:  # images: the central critic reads the observations themselves
            return np.zeros(0, np.float32)
        if self.spec.env_state:
            return np.asarray(env.state(), dtype=np.float32).reshape(-1)
        return obs_rows.reshape(-1)

    def act(
        self, obs: np.ndarray, state: np.ndarray, masks: np.ndarray | None, sample: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actions, log π, V) ``[B, A]`` for padded observations ``[B, A, D]``."""
        o, s = torch.from_numpy(obs).to(self.device), torch.from_numpy(state).to(self.device)
        m = None if masks is None else torch.from_numpy(masks).to(self.device)
        dist = self.policy.distribution(o, m)
        actions = dist.sample() if sample else dist.mode()
        return (actions.cpu().numpy(), dist.log_prob(actions).cpu().numpy(), self.policy.value(o, s).cpu().numpy())

    def values(self, obs: np.ndarray, state: np.ndarray) -> np.ndarray:
        """V ``[B, A]`` for padded observations ``[B, A, D]`` and states ``[B, S]``."""
        return (
            self.policy.value(torch.from_numpy(obs).to(self.device), torch.from_numpy(state).to(self.device))
            .cpu()
            .numpy()
        )

    def env_action(self, agent: str, action: np.ndarray) -> Any:
        """``agent``'s action as its env takes it (a Box action clipped to its bounds, a Discrete one an int)."""
        space = self.spec.action_spaces[self.index[agent]]
        if isinstance(space, spaces.Box):
            return np.clip(action, space.low, space.high).astype(space.dtype)
        return int(action)

    # ------------------------------------------------------------ collection
    @torch.no_grad()
    def collect(self) -> MultiAgentBatch:
        """Fill and return ``num_steps`` rows from every copy."""
        self.buf.clear()
        last, team_last = self._collect_rows(self)
        self.steps_taken = self.num_steps * len(self.envs)  # rows × copies, what one iteration counts
        return self.buf.batch(last, team_last, self.device)

    def report(self) -> dict[str, float]:
        """What the collector adds to the log row: nothing (a runner group adds its runners' health)."""
        return {}

    def close(self) -> None:
        """Close every copy."""
        for env in self.envs:
            env.close()
