"""The one rollout path: step a gymnasium vector env with a policy into preallocated time-major tensors.

The rollout contract (every collector keeps it: this one, and the multi-agent one in ``marl/collector.py``):
each row t holds V(s_t), ``next_values[t]`` = V of the state the column's next action sees (V of the real final
observation after a truncation), ``terminated``/``truncated``, and a mask of the rows that belong to an episode
(``valid`` here, ``alive`` per agent there). So one ``advantages.gae(..., mask=)`` serves every method.

Autoreset: gymnasium's NEXT_STEP (see ``proxrl.envs``). When env i ends an episode at step t (terminated or
truncated), ``values[t + 1, i]`` is V(real final observation), which is exactly the bootstrap GAE needs on a
truncation; step t + 1 of env i is then the env's reset step (action ignored, reward 0) and is marked
``valid = False``. (The row before a masked-out one always ends an episode, so GAE's recursion is cut there and
the trainers need no mask: they drop the invalid rows from the loss.) PettingZoo envs have no reset step: the
multi-agent collectors reset a finished copy at once and mask only the rows where an agent did not act.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from .errors import EnvError, NonFiniteError
from .distributions import action_dtype, action_shape, to_env_action
from .fast.numpy_acting import ActingDraws, NumpyActing
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
    starts: Tensor  # [T, N] bool; True where an episode's first step is (a recurrent policy's state is reset here)

    @property
    def next_values(self) -> Tensor:
        """V(s_{t+1}) ``[T, N]``; after a truncation, V of the real final observation."""
        return self.values[1:]


@dataclass
class EpisodeStats:
    """Returns and lengths of the episodes finished since the last ``drain``."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    ended_at: list[tuple[int, int]] = field(default_factory=list)  # (rollout row, env index) of each episode's end
    agent_returns: list[list[float]] = field(default_factory=list)  # multi-agent: each episode's return per agent

    def drain(self) -> tuple[list[float], list[int]]:
        """The returns and lengths so far (oldest first), leaving the record empty."""
        out = (self.returns, self.lengths)
        self.returns, self.lengths, self.ended_at, self.agent_returns = [], [], [], []
        return out


def _check_finite_step(obs: np.ndarray, reward: np.ndarray, t: int) -> None:
    """Stop at the step where an env returns NaN or ±inf, naming the envs, before it reaches the policy."""
    bad_obs = ~np.isfinite(obs.reshape(len(reward), -1)).all(axis=1)
    bad_reward = ~np.isfinite(reward)
    if bad_obs.any() or bad_reward.any():
        what = "observation" if bad_obs.any() else "reward"
        raise NonFiniteError(
            f"the environment returned a non-finite {what} at rollout step {t} "
            f"(envs {np.flatnonzero(bad_obs | bad_reward).tolist()}); training stopped, "
            "the last good checkpoint is kept"
        )


class Rollout:
    """Collects ``num_steps`` steps per call from ``venv`` with ``policy``, carrying env state between calls.

    Acting uses :class:`NumpyActing` where the policy supports it (CPU, Box observations, tanh/ReLU MLPs), with
    ``rng`` as its sampling generator; otherwise the torch forward pass and torch's global RNG.

    A gSDE policy (``policy.use_sde``) acts with one exploration matrix θ_ε per env, drawn afresh at the start of
    every ``collect`` and, with ``sde_sample_freq`` > 0, every that many steps within it (as SB3: not at episode
    ends). They are drawn from ``rng`` on the numpy acting path, else from torch's global generator; checkpoints
    hold both, so a resumed run draws the same ones.
    """

    def __init__(
        self,
        venv: VectorEnv,
        policy: ActorCritic,
        num_steps: int,
        device: torch.device,
        rng: ActingDraws | None = None,
        sde_sample_freq: int = -1,
    ) -> None:
        self.venv, self.policy, self.num_steps, self.device = venv, policy, num_steps, device
        self.sde_sample_freq = sde_sample_freq
        self.exploration: Tensor | None = None  # gSDE's θ_ε [N, L, A], resampled in collect
        n, t = venv.num_envs, num_steps
        obs_space, act_space = venv.single_observation_space, venv.single_action_space
        self.act_space = act_space
        obs_shape = obs_space.shape
        assert obs_shape is not None, f"the rollout stores array observations, not those of {obs_space}"
        # images stay uint8 (a 128 × 8 Atari rollout: 29 MB, not 116 MB as float32); the encoder scales them
        obs_dtype = np.int64 if obs_shape == () else np.uint8 if obs_space.dtype == np.uint8 else np.float32
        # Every buffer is a numpy array written in place each step (cheaper than a torch op per field); on the
        # CPU the Batch's tensors share their memory, elsewhere they are copied once per rollout.
        self._np = {
            "obs": np.zeros((t, n, *obs_shape), dtype=obs_dtype),
            "actions": np.zeros(
                (t, n, *action_shape(act_space)),
                dtype=np.float32 if action_dtype(act_space) == torch.float32 else np.int64,
            ),
            "logp": np.zeros((t, n), dtype=np.float32),
            "values": np.zeros((t + 1, n), dtype=np.float32),
            "rewards": np.zeros((t, n), dtype=np.float32),
            "terminated": np.zeros((t, n), dtype=bool),
            "truncated": np.zeros((t, n), dtype=bool),
            "valid": np.zeros((t, n), dtype=bool),
            "starts": np.zeros((t, n), dtype=bool),
        }
        self._shared = device.type == "cpu"
        self._tensors = {k: torch.from_numpy(v).to(device) for k, v in self._np.items()}  # the Batch's fields
        self.batch = Batch(**self._tensors)
        use_numpy = self._shared and NumpyActing.supports(policy)
        self._numpy_acting = NumpyActing(policy, rng) if rng is not None and use_numpy else None
        self.episodes = EpisodeStats()
        self.obs: np.ndarray | None = None
        self.prev_done = np.zeros(n, dtype=bool)
        self.prev_valid = np.zeros(n, dtype=bool)  # was the last row of an env valid (else the next one starts)
        # a recurrent policy's state (h, c) ``[N, H]`` each, carried across calls; ``initial_state`` is its value at
        # the start of the last rollout (the update replays the rollout from it)
        self.recurrent = policy.core is not None
        self.state = policy.initial_state(n, device) if self.recurrent else None
        self.initial_state = self.state
        self.env_steps = 0  # env steps collected before this call (set by the trainer on resume)
        self.steps_taken = 0  # env steps the last call made

    def _act(self, obs: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._numpy_acting is not None:
            return self._numpy_acting.act(obs)
        x = torch.from_numpy(obs).to(self.device)
        if self.recurrent:  # the state is reset where an episode starts, then carried
            keep = torch.from_numpy(~starts).to(self.device)
            actions, logp, value, self.state = self.policy.act_recurrent(x, self._carried_state(), keep)
        else:
            actions, logp, value = self.policy.act(x, self.exploration)
        return actions.cpu().numpy(), logp.cpu().numpy(), value.cpu().numpy()

    def _resample_exploration(self, n: int) -> None:
        """gSDE: fresh matrices θ_ε for the ``n`` envs (the numpy acting path's from its generator, a view here)."""
        if self._numpy_acting is not None:
            self.exploration = torch.from_numpy(self._numpy_acting.resample_exploration(n))
        else:
            self.exploration = self.policy.sample_exploration(n)

    def _value(self, obs: np.ndarray) -> np.ndarray:
        if self._numpy_acting is not None:
            return self._numpy_acting.value(obs)
        x = torch.from_numpy(obs).to(self.device)
        if self.recurrent:  # V(s_T) with the carried state (its episode goes on, or it is a final observation)
            return self.policy.value_recurrent(x, self._carried_state()).cpu().numpy()
        return self.policy.value(x).cpu().numpy()

    def _carried_state(self) -> tuple[Tensor, Tensor]:
        """A recurrent policy's state (h, c), which exists from construction on."""
        assert self.state is not None, "only a recurrent policy carries a state"
        return self.state

    def start(self, obs: np.ndarray) -> None:
        """Set the first observation (from ``venv.reset``); no step before it is a reset step."""
        self.obs = obs
        self.prev_done[:] = False
        self.prev_valid[:] = False

    @torch.no_grad()
    def collect(self, episodic: bool = False) -> Batch:
        """Step every env ``num_steps`` times, filling and returning the (reused) ``Batch``.

        ``episodic``: reset every env first and stop once each has finished one episode (at most ``num_steps``
        steps); steps after an env's episode are ``valid = False``. This gives the complete episodes Monte-Carlo
        returns need, each drawn from the current policy (unlike episodes cut at a rollout boundary, or completed
        under the next policy). ``steps_taken`` holds the env steps the call made.
        """
        assert self.obs is not None, "call start(obs) first"
        b, venv, arr = self.batch, self.venv, self._np
        obs = self.obs
        finished = np.zeros(venv.num_envs, dtype=bool)
        if episodic:
            obs, _ = venv.reset()
            self.prev_done[:] = False
            self.prev_valid[:] = False
            for key in ("rewards", "terminated", "truncated", "valid"):
                arr[key][:] = 0
        self.initial_state = self.state
        steps = self.num_steps
        for t in range(self.num_steps):
            arr["obs"][t] = obs
            arr["valid"][t] = ~(self.prev_done | finished)
            # an episode's first step: a valid row after an invalid one (the reset row of NEXT_STEP, or the start)
            arr["starts"][t] = arr["valid"][t] & ~self.prev_valid
            self.prev_valid = arr["valid"][t].copy()
            if self.policy.use_sde and (t == 0 or (self.sde_sample_freq > 0 and t % self.sde_sample_freq == 0)):
                self._resample_exploration(venv.num_envs)
            actions, arr["logp"][t], arr["values"][t] = self._act(arr["obs"][t], arr["starts"][t])
            arr["actions"][t] = actions
            try:
                obs, reward, terminated, truncated, info = venv.step(to_env_action(self.act_space, actions))
            except Exception as e:  # noqa: BLE001 - report where, keep the env's own message and traceback
                raise EnvError(
                    f"the environment raised at env step {self.env_steps + t * venv.num_envs:,} "
                    f"(rollout step {t}); training stopped, the last checkpoint is kept.\n{e}"
                ) from e
            _check_finite_step(obs, reward, t)
            arr["rewards"][t] = reward
            arr["terminated"][t] = terminated
            arr["truncated"][t] = truncated
            if episodic:
                finished |= self.prev_done  # an env's reset step closes its one episode for this call
            self.prev_done = terminated | truncated
            if "_episode" in info:
                done = info["_episode"] & ~finished if episodic else info["_episode"]
                self.episodes.returns.extend(info["episode"]["r"][done].tolist())
                self.episodes.lengths.extend(info["episode"]["l"][done].tolist())
                self.episodes.ended_at.extend((t, int(j)) for j in np.flatnonzero(done))
            if episodic and (finished | self.prev_done).all():
                steps = t + 1
                break
        arr["values"][steps] = self._value(np.asarray(obs, dtype=arr["obs"].dtype))
        if not self._shared:
            for key, value in arr.items():
                self._tensors[key].copy_(torch.from_numpy(value))
        self.obs = obs
        self.steps_taken = steps * venv.num_envs
        self.env_steps += self.steps_taken
        return b

    def close(self) -> None:
        """Close the vector env."""
        self.venv.close()

    def report(self) -> dict[str, float]:
        """What the rollout adds to the log row: nothing here (a runner group adds its runners' health)."""
        return {}
