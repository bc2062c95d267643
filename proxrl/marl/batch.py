"""The multi-agent rollout: :class:`MultiAgentBatch`, T rows from N copies with A agents as time-major tensors
``[T, N, A, ...]``, the numpy buffers the collector fills, and :func:`next_values`, V(s_{t+1}) of every row.

The batch keeps the library's rollout contract (``rollout.py``): every row carries ``next_values``, V of the state
the column's next action sees (V of the final observation after a truncation), and a mask, ``alive[t, n, a]``: the
rows where agent a of copy n acted. So one ``advantages.gae(..., mask=alive)`` serves it as it serves the gymnasium
rollout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from .envs import AgentSpec


@dataclass
class MultiAgentBatch:
    """One rollout of T rows from N copies with A agents (shapes in comments); ``team_*`` are per copy."""

    obs: Tensor  # [T, N, A, D] zero-padded to the widest observation
    state: Tensor  # [T, N, S]
    actions: Tensor  # [T, N, A] int64, or [T, N, A, d] float
    masks: Tensor | None  # [T, N, A, n] bool legal actions (action_mask envs)
    logp: Tensor  # [T, N, A]
    values: Tensor  # [T, N, A] (the central V(s) repeated per agent with a central critic)
    rewards: Tensor  # [T, N, A] credited to the row where the agent acted
    terminated: Tensor  # [T, N, A] bool: the agent's episode ended at its action in this row
    truncated: Tensor  # [T, N, A] bool
    alive: Tensor  # [T, N, A] bool: the agent acted in this row (the mask of gae)
    next_values: Tensor  # [T, N, A]: V at the agent's next action (V(final observation) after a truncation)
    team_rewards: Tensor  # [T, N]: Σ_a rewards
    team_terminated: Tensor  # [T, N] bool: the episode ended here with every agent terminated
    team_truncated: Tensor  # [T, N] bool: the episode ended here otherwise
    team_next_values: Tensor  # [T, N]: central V at the copy's next row (V(final state) after a truncation)

    def local_critic_data(self) -> tuple[Tensor, ...]:
        """What local critics (IPPO) learn from: each agent's own rewards, V_i, next V_i, ends and the rows where
        it acted, ``[T, N, A]``."""
        return self.rewards, self.values, self.next_values, self.terminated, self.truncated, self.alive

    def central_critic_data(self) -> tuple[Tensor, ...]:
        """What a central critic (MAPPO/HAPPO) learns from: the team reward Σ_i r_i, the central V(s), its next
        value, the team's ends and the rows where anyone acted, ``[T, N]``."""
        return (
            self.team_rewards,
            self.values[..., 0],
            self.team_next_values,
            self.team_terminated,
            self.team_truncated,
            self.alive.any(-1),
        )


class RolloutBuffers:
    """The rollout's rows as numpy arrays: ``t`` rows of the copies' steps, after ``carry`` rows for the actions an
    earlier rollout held back (turn-based games: :mod:`.aec`)."""

    def __init__(self, t: int, n: int, spec: AgentSpec, box_dim: int | None, carry: int = 0) -> None:
        a, d, t = len(spec.names), max(spec.obs_dims), t + carry
        self.obs: np.ndarray = np.zeros((t, n, a, d), spec.obs_dtype)
        self.state = np.zeros((t, n, spec.state_dim), np.float32)
        self.actions = np.zeros(
            (t, n, a) if box_dim is None else (t, n, a, box_dim), np.int64 if box_dim is None else np.float32
        )
        n_act = max(int(cast(spaces.Discrete, s).n) for s in spec.action_spaces) if box_dim is None else 0
        self.masks = np.ones((t, n, a, n_act), bool) if spec.has_masks else None
        self.logp, self.values = np.zeros((t, n, a), np.float32), np.zeros((t, n, a), np.float32)
        self.rewards, self.bootstrap = np.zeros((t, n, a), np.float32), np.zeros((t, n, a), np.float32)
        self.terminated, self.truncated = np.zeros((t, n, a), bool), np.zeros((t, n, a), bool)
        self.alive = np.zeros((t, n, a), bool)
        self.team_terminated, self.team_truncated = np.zeros((t, n), bool), np.zeros((t, n), bool)
        self.team_bootstrap = np.zeros((t, n), np.float32)

    def clear(self) -> None:
        for name in (
            "rewards",
            "bootstrap",
            "terminated",
            "truncated",
            "alive",
            "team_terminated",
            "team_truncated",
            "team_bootstrap",
            "obs",
            "values",
            "logp",
        ):
            getattr(self, name)[:] = 0
        if self.masks is not None:
            self.masks[:] = True

    def batch(self, last_values: np.ndarray, team_last: np.ndarray, device: torch.device) -> MultiAgentBatch:
        """The rows as tensors on ``device``; ``last_values`` ``[N, A]`` is V at each agent's next action past the
        rollout's end, ``team_last`` ``[N]`` the central V at the copy's next row past it."""

        def tt(x: np.ndarray) -> Tensor:
            return torch.from_numpy(x.copy()).to(device)

        return MultiAgentBatch(
            obs=tt(self.obs),
            state=tt(self.state),
            actions=tt(self.actions),
            masks=None if self.masks is None else tt(self.masks),
            logp=tt(self.logp),
            values=tt(self.values),
            rewards=tt(self.rewards),
            terminated=tt(self.terminated),
            truncated=tt(self.truncated),
            alive=tt(self.alive),
            next_values=tt(next_values(self.values, self.alive, self.truncated, self.bootstrap, last_values)),
            team_rewards=tt(self.rewards.sum(-1)),
            team_terminated=tt(self.team_terminated),
            team_truncated=tt(self.team_truncated),
            team_next_values=tt(
                next_values(
                    self.values[..., 0],
                    np.asarray(self.alive.any(-1)),  # rows where anyone acted
                    self.team_truncated,
                    self.team_bootstrap,
                    team_last,
                )
            ),
        )


def next_values(
    values: np.ndarray, alive: np.ndarray, truncated: np.ndarray, bootstrap: np.ndarray, last: np.ndarray
) -> np.ndarray:
    """V(s_{t+1}) of every row for ``gae``: after a truncation ``bootstrap[t]`` (V of the final observation), else V
    at the column's next alive row, ``last`` past the rollout's end (a termination's is never read).
    ``values``/``alive``/``truncated``/``bootstrap`` ``[T, ...]``, ``last`` ``[...]``; returns ``[T, ...]``."""
    out = np.empty_like(values)
    upcoming = last.astype(values.dtype, copy=True)
    for t in range(values.shape[0] - 1, -1, -1):
        out[t] = np.where(truncated[t], bootstrap[t], upcoming)
        upcoming = np.where(alive[t], values[t], upcoming)
    return out
