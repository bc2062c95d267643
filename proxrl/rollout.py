"""The one rollout path: step a gymnasium vector env with a policy into preallocated time-major tensors.

Autoreset: NEXT_STEP (see ``proxrl.envs``). When env i ends an episode at step t (terminated or truncated),
``values[t + 1, i]`` is V(real final observation), which is exactly the bootstrap GAE needs on a truncation;
step t + 1 of env i is then the env's reset step (action ignored, reward 0) and is marked ``valid = False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from .errors import NonFiniteError
from .distributions import action_dtype, action_shape, to_env_action
from .policies import ActorCritic


@dataclass
class Batch:
    """One rollout of T steps from N envs. ``values`` has T + 1 rows: the last is V(s_T) for bootstrapping."""

    obs: Tensor  # [T, N, *obs_shape]
    actions: Tensor  # [T, N, *act_shape]
    logp: Tensor  # [T, N]  log π_old(a_t|s_t)
    values: Tensor  # [T + 1, N]  V(s_t)
    rewards: Tensor  # [T, N]
    terminated: Tensor  # [T, N] bool
    truncated: Tensor  # [T, N] bool
    valid: Tensor  # [T, N] bool; False on NEXT_STEP reset steps, which belong to no episode

    @property
    def next_values(self) -> Tensor:
        """V(s_{t+1}) ``[T, N]``; after a truncation, V of the real final observation."""
        return self.values[1:]


@dataclass
class EpisodeStats:
    """Returns and lengths of the episodes finished since the last ``drain``."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    def drain(self) -> tuple[list[float], list[int]]:
        out = (self.returns, self.lengths)
        self.returns, self.lengths = [], []
        return out


def _check_finite_step(obs: np.ndarray, reward: np.ndarray, t: int) -> None:
    """Stop at the step where an env returns NaN or ±inf, naming the envs, before it reaches the policy."""
    bad_obs = ~np.isfinite(obs.reshape(len(reward), -1)).all(axis=1)
    bad_reward = ~np.isfinite(reward)
    if bad_obs.any() or bad_reward.any():
        what = "observation" if bad_obs.any() else "reward"
        raise NonFiniteError(f"the environment returned a non-finite {what} at rollout step {t} "
                             f"(envs {np.flatnonzero(bad_obs | bad_reward).tolist()}); training stopped, "
                             "the last good checkpoint is kept")


class Rollout:
    """Collects ``num_steps`` steps per call from ``venv`` with ``policy``, carrying env state between calls."""

    def __init__(self, venv: VectorEnv, policy: ActorCritic, num_steps: int, device: torch.device) -> None:
        self.venv, self.policy, self.num_steps, self.device = venv, policy, num_steps, device
        n, t = venv.num_envs, num_steps
        obs_space, act_space = venv.single_observation_space, venv.single_action_space
        self.act_space = act_space
        obs_dtype = torch.int64 if obs_space.shape == () else torch.float32
        alloc = dict(device=device)
        self.batch = Batch(
            obs=torch.zeros((t, n, *obs_space.shape), dtype=obs_dtype, **alloc),
            actions=torch.zeros((t, n, *action_shape(act_space)), dtype=action_dtype(act_space), **alloc),
            logp=torch.zeros((t, n), **alloc),
            values=torch.zeros((t + 1, n), **alloc),
            rewards=torch.zeros((t, n), **alloc),
            terminated=torch.zeros((t, n), dtype=torch.bool, **alloc),
            truncated=torch.zeros((t, n), dtype=torch.bool, **alloc),
            valid=torch.zeros((t, n), dtype=torch.bool, **alloc),
        )
        self.episodes = EpisodeStats()
        self.obs: Tensor | None = None
        self.prev_done = np.zeros(n, dtype=bool)

    def start(self, obs: np.ndarray) -> None:
        """Set the first observation (from ``venv.reset``); no step before it is a reset step."""
        self.obs = torch.as_tensor(obs, device=self.device)
        self.prev_done[:] = False

    @torch.no_grad()
    def collect(self) -> Batch:
        """Step every env ``num_steps`` times, filling and returning the (reused) ``Batch``."""
        assert self.obs is not None, "call start(obs) first"
        b, policy, venv = self.batch, self.policy, self.venv
        obs = self.obs
        for t in range(self.num_steps):
            b.obs[t] = obs
            b.valid[t] = torch.from_numpy(~self.prev_done)
            actions, logp, value = policy.act(obs)
            b.actions[t], b.logp[t], b.values[t] = actions, logp, value
            next_obs, reward, terminated, truncated, info = venv.step(to_env_action(self.act_space, actions.cpu()))
            _check_finite_step(next_obs, reward, t)
            b.rewards[t] = torch.from_numpy(np.asarray(reward, dtype=np.float32))
            b.terminated[t] = torch.from_numpy(terminated)
            b.truncated[t] = torch.from_numpy(truncated)
            self.prev_done = terminated | truncated
            if "_episode" in info:
                done = info["_episode"]
                self.episodes.returns.extend(info["episode"]["r"][done].tolist())
                self.episodes.lengths.extend(info["episode"]["l"][done].tolist())
            obs = torch.as_tensor(next_obs, device=self.device)
        b.values[self.num_steps] = policy.value(obs)
        self.obs = obs
        return b
