"""PettingZoo environments for the multi-agent trainers: loading by module path, and the rollout of N copies into
time-major multi-agent tensors ``[T, N, A, ...]``.

Both collectors fill one :class:`MultiAgentBatch` and keep the library's rollout contract (``rollout.py``):
every row carries ``next_values``, V of the state the column's next action sees (V of the final observation
after a truncation), and a mask, ``alive[t, n, a]``: the rows where agent a of copy n acted. So one
``advantages.gae(..., mask=alive)`` serves them as it serves the gymnasium rollout. A finished copy is reset at
once (its next row is the new episode's first step). In a ``ParallelEnv`` an agent that leaves early is not alive
afterwards. In an ``AECEnv`` (turn based) exactly one agent acts per row; the rewards an agent receives on other
agents' turns are credited to its own last action, and ``action_mask`` observations restrict the logits.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from ..config import ConfigError
from ..policies import MultiAgentActorCritic, warn_if_flattened_image
from ..policies.encoders import fits_nature_cnn, is_image
from ..rollout import EpisodeStats


def _is_gymnasium_id(name: str) -> bool:
    import gymnasium as gym

    try:
        gym.spec(name.partition(":")[2] if ":" in name else name)
    except gym.error.Error:
        return False
    return True


def load_pettingzoo(
    name: str, env_kwargs: dict[str, Any], frames: FramePreprocessing | None = None
) -> tuple[str, Callable[[], Any]]:
    """('parallel' | 'aec', constructor) for a PettingZoo module path such as ``mpe2.simple_spread_v3``;
    the module's ``parallel_env(...)`` is preferred over ``env(...)``. ``frames``: SuperSuit's image
    preprocessing for pixel environments (pistonball), applied to every copy."""
    from pettingzoo import AECEnv, ParallelEnv

    try:
        module = importlib.import_module(name)
    except ImportError as e:
        if _is_gymnasium_id(name):
            raise ConfigError(
                f"{name} is a single-agent gymnasium environment: train it with `proxrl train ppo --env {name}` "
                "(or pg, reinforce, offpolicy_pg); ippo, mappo and happo take a PettingZoo module path"
            ) from None
        raise ConfigError(
            f"cannot import the PettingZoo environment module '{name}' ({e}); install its package "
            "(e.g. `pip install mpe2` for mpe2.simple_spread_v3) or check the name"
        ) from None
    kind = "parallel" if hasattr(module, "parallel_env") else "aec" if hasattr(module, "env") else None
    if kind is None:
        raise ConfigError(f"module '{name}' is not a PettingZoo environment: it has neither parallel_env() nor env()")
    ctor = module.parallel_env if kind == "parallel" else module.env

    def make() -> Any:
        try:
            env = ctor(**env_kwargs)
        except TypeError as e:
            raise ConfigError(f"{name}: env_kwargs {env_kwargs} do not fit its constructor: {e}") from None
        if not isinstance(env, ParallelEnv if kind == "parallel" else AECEnv) and not hasattr(env, "possible_agents"):
            raise ConfigError(f"{name}.{ctor.__name__}() did not return a PettingZoo environment")
        return env if frames is None or not frames.active else frames.wrap(env)

    return kind, make


@dataclass(frozen=True)
class FramePreprocessing:
    """Image preprocessing of every agent's observation, by SuperSuit (the PettingZoo wrappers CleanRL's and
    PettingZoo's own pixel tutorials use): ``grayscale`` (the luminance, one channel), ``frame_size`` (resized to
    size × size; 0 keeps the env's), ``frame_stack`` (the last k frames stacked along the channels)."""

    grayscale: bool = False
    frame_size: int = 0
    frame_stack: int = 1

    @classmethod
    def of(cls, config: Any) -> FramePreprocessing:
        """The preprocessing a multi-agent config asks for (its grayscale, frame_size, frame_stack)."""
        return cls(config.grayscale, config.frame_size, config.frame_stack)

    @property
    def active(self) -> bool:
        """Whether any preprocessing is asked for."""
        return self.grayscale or self.frame_size > 0 or self.frame_stack > 1

    def wrap(self, env: Any) -> Any:
        """``env`` with the preprocessing applied (uint8 images, channels last)."""
        try:
            import supersuit as ss
        except ImportError:
            raise ConfigError(
                "grayscale, frame_size and frame_stack use SuperSuit: pip install 'proxrl[butterfly]' (or supersuit)"
            ) from None
        if self.grayscale:
            env = ss.color_reduction_v0(env, mode="full")
        if self.frame_size:
            env = ss.resize_v1(env, self.frame_size, self.frame_size)
        if self.frame_stack > 1:
            env = ss.frame_stack_v1(env, self.frame_stack)
        return env


def _obs_space(space: spaces.Space) -> spaces.Space:
    return space["observation"] if isinstance(space, spaces.Dict) and "observation" in space.spaces else space


def _split(obs: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(flat observation, action mask or None) from a PettingZoo observation; its dtype is the buffer's business
    (float32 rows, or uint8 rows for images)."""
    if isinstance(obs, dict) and "observation" in obs:
        return np.asarray(obs["observation"]).reshape(-1), obs.get("action_mask")
    return np.asarray(obs).reshape(-1), None


def _image_shape(obs_spaces: list[spaces.Space]) -> tuple[int, ...] | None:
    """The shape every agent's uint8 image observation has, or None (not images, or of different shapes)."""
    shapes = {tuple(s.shape) for s in obs_spaces if is_image(s)}
    return shapes.pop() if len(shapes) == 1 and all(is_image(s) for s in obs_spaces) else None


@dataclass
class AgentSpec:
    """What the networks need to know about an environment's agents."""

    names: list[str]
    obs_dims: list[int]
    action_spaces: list[spaces.Space]
    state_dim: int
    env_state: bool  # the global state comes from env.state() (else: all observations concatenated)
    has_masks: bool
    image_shape: tuple[int, ...] | None = None  # every agent sees a uint8 image of this shape, read by the CNN

    @property
    def obs_dtype(self) -> type:
        """The rollout's observation dtype: uint8 for images (scaled on the learner), else float32."""
        return np.uint8 if self.image_shape else np.float32


def _cnn_image(obs_spaces: list[spaces.Space], policy: str, image_channels: str) -> tuple[int, ...] | None:
    """The image shape the Nature CNN will read, or None when the observations go flat into MLPs: ``auto`` takes the
    CNN for uint8 images of at least 36 × 36 pixels, ``cnn`` insists (images only), ``mlp`` flattens them (with a
    warning, as does ``auto`` for smaller images)."""
    image = _image_shape(obs_spaces)
    if policy == "cnn" and image is None:
        raise ConfigError("policy=cnn needs every agent to observe a uint8 image of one shape; this env's do not")
    if image is None:
        return None
    box = spaces.Box(0, 255, image, np.uint8)
    if policy == "cnn" or (policy == "auto" and fits_nature_cnn(box, image_channels)):
        return image
    warn_if_flattened_image(box, None)
    return None


def agent_spec(env: Any, kind: str, global_state: str, policy: str = "auto", image_channels: str = "auto") -> AgentSpec:
    """Inspect a freshly made environment (reset once) and describe its agents; ``policy`` decides whether image
    observations get the CNN (then they are stored as uint8 and the central critic reads them, with no state)."""
    names = list(env.possible_agents)
    obs_spaces = [env.observation_space(a) for a in names]
    dims = [int(np.prod(_obs_space(s).shape)) for s in obs_spaces]
    has_masks = any(isinstance(s, spaces.Dict) and "action_mask" in s.spaces for s in obs_spaces)
    image = _cnn_image([_obs_space(s) for s in obs_spaces], policy, image_channels)
    env.reset(seed=0)
    env_state = False
    if image is not None:  # the central critic sees the agents' frames stacked along the channels
        if global_state == "env":
            raise ConfigError(
                "global_state=env is not supported with image observations (env.state() is an unprocessed frame); "
                "use auto or concat: the central critic then sees every agent's frame, stacked along the channels"
            )
        return AgentSpec(names, dims, [env.action_space(a) for a in names], 0, False, has_masks, image)
    if global_state in ("auto", "env"):
        try:
            state_dim = int(np.asarray(env.state(), dtype=np.float32).size)
            env_state = True
        except (NotImplementedError, AttributeError):
            if global_state == "env":
                raise ConfigError("global_state=env but this environment has no state(); use auto or concat") from None
    if not env_state:
        state_dim = max(dims) * len(names)
    return AgentSpec(names, dims, [env.action_space(a) for a in names], state_dim, env_state, has_masks)


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


class _Buffers:
    """The rollout's rows as numpy arrays: ``t`` rows of the copies' steps, after ``carry`` rows for the actions an
    earlier rollout held back (turn-based games: see :meth:`MultiAgentCollector._hold`)."""

    def __init__(self, t: int, n: int, spec: AgentSpec, box_dim: int | None, carry: int = 0) -> None:
        a, d, t = len(spec.names), max(spec.obs_dims), t + carry
        self.obs = np.zeros((t, n, a, d), spec.obs_dtype)
        self.state = np.zeros((t, n, spec.state_dim), np.float32)
        self.actions = np.zeros(
            (t, n, a) if box_dim is None else (t, n, a, box_dim), np.int64 if box_dim is None else np.float32
        )
        n_act = max(int(s.n) for s in spec.action_spaces) if box_dim is None else 0
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
                    self.values[..., 0], self.alive.any(-1), self.team_truncated, self.team_bootstrap, team_last
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
        self.deterministic = deterministic  # act with the mode of π (evaluation)
        self.envs = [make_env() for _ in range(num_envs)]
        self.num_steps = num_steps
        self.steps_taken = 0
        self.index = {name: i for i, name in enumerate(spec.names)}
        box = spec.action_spaces[0]
        self.box_dim = int(box.shape[0]) if isinstance(box, spaces.Box) else None
        n, a = num_envs, len(spec.names)
        # AEC: one row per agent before the steps, for the actions the last rollout held back (see _hold)
        self.carry = a if kind == "aec" else 0
        self.buf = _Buffers(num_steps, num_envs, spec, self.box_dim, self.carry)
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
        self._obs: list[dict[str, Any]] = [self._reset(i) for i in range(n)]

    # ------------------------------------------------------------ helpers
    def _reset(self, i: int) -> dict[str, Any]:
        self._episode_count += 1
        out = self.envs[i].reset(seed=self.seed + 7919 * self._episode_count + i)
        self._ep_return[i] = 0.0
        self._ep_length[i] = 0
        self._last_row[i] = -1
        self._last_move[i] = -1
        self._credited[i] = 0.0
        self._held_row[i] = -1
        return out[0] if self.kind == "parallel" else {}

    def _finish_episode(self, i: int) -> None:
        self.episodes.returns.append(float(self._ep_return[i].sum()))
        self.episodes.lengths.append(int(self._ep_length[i]))
        self.episodes.agent_returns.append(self._ep_return[i].tolist())

    def _write_obs(self, agent_obs: dict[str, Any], obs_rows: np.ndarray, mask_rows: np.ndarray | None) -> None:
        """Flatten each agent's observation into its zero-padded row of ``obs_rows`` ``[A, D]`` (and its action mask
        into ``mask_rows`` ``[A, n]``)."""
        for name, o in agent_obs.items():
            flat, mask = _split(o)
            k = self.index[name]
            obs_rows[k, : flat.size] = flat
            if mask is not None and mask_rows is not None:
                mask_rows[k, : mask.size] = mask.astype(bool)

    def _state(self, env: Any, obs_rows: np.ndarray) -> np.ndarray:
        if self.spec.state_dim == 0:  # images: the central critic reads the observations themselves
            return np.zeros(0, np.float32)
        if self.spec.env_state:
            return np.asarray(env.state(), dtype=np.float32).reshape(-1)
        return obs_rows.reshape(-1)

    def _evaluate(
        self, obs: np.ndarray, state: np.ndarray, masks: np.ndarray | None, sample: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actions, log π, V) ``[B, A]`` for padded observations ``[B, A, D]``."""
        o, s = torch.from_numpy(obs).to(self.device), torch.from_numpy(state).to(self.device)
        m = None if masks is None else torch.from_numpy(masks).to(self.device)
        dist = self.policy.distribution(o, m)
        actions = dist.sample() if sample else dist.mode()
        return (actions.cpu().numpy(), dist.log_prob(actions).cpu().numpy(), self.policy.value(o, s).cpu().numpy())

    def _values(self, obs: np.ndarray, state: np.ndarray) -> np.ndarray:
        return (
            self.policy.value(torch.from_numpy(obs).to(self.device), torch.from_numpy(state).to(self.device))
            .cpu()
            .numpy()
        )

    def _env_action(self, agent: str, action: np.ndarray) -> Any:
        space = self.spec.action_spaces[self.index[agent]]
        if isinstance(space, spaces.Box):
            return np.clip(action, space.low, space.high).astype(space.dtype)
        return int(action)

    # ------------------------------------------------------------ collection
    @torch.no_grad()
    def collect(self) -> MultiAgentBatch:
        """Fill and return ``num_steps`` rows from every copy."""
        self.buf.clear()
        if self.kind == "parallel":
            last = self._collect_parallel()
            team_last = last[:, 0]
        else:
            last, team_last = self._collect_aec()
        self.steps_taken = self.num_steps * len(self.envs)  # rows × copies, what one iteration counts
        return self.buf.batch(last, team_last, self.device)

    def report(self) -> dict[str, float]:
        """What the collector adds to the log row: nothing (a runner group adds its runners' health)."""
        return {}

    def _collect_parallel(self) -> np.ndarray:
        b, n_env, names = self.buf, len(self.envs), self.spec.names
        d = b.obs.shape[-1]
        for t in range(self.num_steps):
            for i, env in enumerate(self.envs):
                self._write_obs(self._obs[i], b.obs[t, i], None if b.masks is None else b.masks[t, i])
                b.alive[t, i, [self.index[a] for a in self._obs[i]]] = True  # _obs holds the live agents only
                b.state[t, i] = self._state(env, b.obs[t, i])
            actions, b.logp[t], b.values[t] = self._evaluate(
                b.obs[t], b.state[t], None if b.masks is None else b.masks[t], not self.deterministic
            )
            b.actions[t] = actions
            final_obs = np.zeros((n_env, len(names), d), b.obs.dtype)
            final_state = np.zeros((n_env, self.spec.state_dim), np.float32)
            ended = []
            for i, env in enumerate(self.envs):
                live = list(env.agents)
                obs, rew, term, trunc, _ = env.step({a: self._env_action(a, actions[i, self.index[a]]) for a in live})
                self._ep_length[i] += 1
                for a in live:
                    k = self.index[a]
                    b.rewards[t, i, k] = rew.get(a, 0.0)
                    b.terminated[t, i, k], b.truncated[t, i, k] = bool(term.get(a, False)), bool(trunc.get(a, False))
                    self._ep_return[i, k] += b.rewards[t, i, k]
                self._write_obs({a: obs[a] for a in live if a in obs}, final_obs[i], None)
                self._obs[i] = {a: o for a, o in obs.items() if a in env.agents}
                if not env.agents:
                    ended.append(i)
                    b.team_terminated[t, i] = bool(b.terminated[t, i][b.alive[t, i]].all())
                    b.team_truncated[t, i] = not b.team_terminated[t, i]
                if b.truncated[t, i].any() or b.team_truncated[t, i]:  # only a truncation needs V(final state)
                    final_state[i] = self._state(env, final_obs[i])
            if b.truncated[t].any() or b.team_truncated[t].any():
                v_final = self._values(final_obs, final_state)
                b.bootstrap[t] = np.where(b.truncated[t], v_final, 0.0)
                b.team_bootstrap[t] = np.where(b.team_truncated[t], v_final[:, 0], 0.0)
            for i in ended:
                self._finish_episode(i)
                self._obs[i] = self._reset(i)
        obs_now = np.zeros_like(b.obs[0])
        state_now = np.zeros_like(b.state[0])
        for i, env in enumerate(self.envs):
            self._write_obs(self._obs[i], obs_now[i], None)
            state_now[i] = self._state(env, obs_now[i])
        return self._values(obs_now, state_now)

    def _observe_all(self, env: Any) -> tuple[np.ndarray, np.ndarray | None]:
        obs = np.zeros((len(self.spec.names), self.buf.obs.shape[-1]), self.buf.obs.dtype)
        masks = None if self.buf.masks is None else np.ones((len(self.spec.names), self.buf.masks.shape[-1]), bool)
        self._write_obs({name: env.observe(name) for name in env.agents}, obs, masks)
        return obs, masks

    def _advance_aec(self, i: int) -> str:
        """Step copy i through agents whose episode is over (crediting their rewards), resetting it when the game
        ends, until an agent has to act; returns that agent."""
        b, env = self.buf, self.envs[i]
        while True:
            if not env.agents:
                self._finish_episode(i)
                self._reset(i)
                continue
            name = env.agent_selection
            k = self.index[name]
            obs, reward, term, trunc, _ = env.last()
            row = self._last_row[i, k]
            gained = float(reward) - self._credited[i, k]
            self._credited[i, k] = 0.0
            if row >= 0:
                b.rewards[row, i, k] += gained
            self._ep_return[i, k] += gained
            if not (term or trunc):
                return name
            self._mark_game_end(i)
            if row >= 0:
                b.terminated[row, i, k], b.truncated[row, i, k] = bool(term), bool(trunc) and not term
                if trunc and not term:
                    o, _ = self._observe_all(env)
                    st = self._state(env, o)
                    b.bootstrap[row, i, k] = self._values(o[None], st[None])[0, k]
            self._last_row[i, k] = -1
            env.step(None)

    def _mark_game_end(self, i: int) -> None:
        """Once every agent of copy i is done, mark the team's episode end on the row of the game's last move:
        terminated if every agent terminated, else truncated with the central V(final state) as its bootstrap.
        (Nothing to mark if that move was in an earlier rollout, or the game is still going for some agent.)"""
        env, b, row = self.envs[i], self.buf, self._last_move[i]
        if row < 0 or not all(env.terminations.get(a) or env.truncations.get(a) for a in env.agents):
            return
        self._last_move[i] = -1  # marked once
        if all(env.terminations.get(a) for a in env.agents):
            b.team_terminated[row, i] = True
            return
        obs, _ = self._observe_all(env)
        b.team_truncated[row, i] = True
        b.team_bootstrap[row, i] = self._values(obs[None], self._state(env, obs)[None])[0, 0]

    def _collect_aec(self) -> tuple[np.ndarray, np.ndarray]:
        b, c = self.buf, self.carry
        self._last_row[:] = -1  # rows of the previous rollout are gone; what they await was held back (_hold)
        self._last_move[:] = -1
        self._bring_held_rows()
        for t in range(c, c + self.num_steps):
            acting = []
            for i, env in enumerate(self.envs):
                name = self._advance_aec(i)
                k = self.index[name]
                obs, masks = self._observe_all(env)
                b.obs[t, i], b.state[t, i] = obs, self._state(env, obs)
                if masks is not None and b.masks is not None:
                    b.masks[t, i] = masks
                b.alive[t, i, k] = True
                acting.append((name, k))
            actions, logp, values = self._evaluate(
                b.obs[t], b.state[t], None if b.masks is None else b.masks[t], not self.deterministic
            )
            for i, (name, k) in enumerate(acting):
                b.actions[t, i, k], b.logp[t, i, k] = actions[i, k], logp[i, k]
                b.values[t, i] = values[i]  # every agent's V of this state (a central critic's V(s) in each column)
                self._last_row[i, k] = t
                self._last_move[i] = t
                self._ep_length[i] += 1
                self.envs[i].step(self._env_action(name, actions[i, k]))
        return self._end_aec_rollout()

    def _end_aec_rollout(self) -> tuple[np.ndarray, np.ndarray]:
        """Close the rollout: an agent whose game is over gets what it received since its last action and its end
        flags there; an agent still playing has its last action held back for the next rollout, where the rewards
        of that action (which may come on the other players' turns, a lost game's −1 among them) reach its row.
        Returns V at each column's next row past the rollout (``[N, A]``: a held action's V, else V of the current
        observation) and the central V at each copy's (``[N]``: at its earliest held action, else now)."""
        b = self.buf
        last = np.zeros(b.values.shape[1:], np.float32)
        team_last = np.zeros(len(self.envs), np.float32)
        for i, env in enumerate(self.envs):
            obs, _ = self._observe_all(env)
            v = self._values(obs[None], self._state(env, obs)[None])[0] if env.agents else np.zeros(len(obs))
            self._mark_game_end(i)  # a game that ended with this rollout's last move
            held = []
            for name in env.agents:
                k = self.index[name]
                row = self._last_row[i, k]
                if not (env.terminations.get(name) or env.truncations.get(name)):
                    if row >= 0:
                        self._hold(i, k, row)
                        v[k] = b.values[row, i, k]
                        held.append(row)
                    continue  # what it receives before its next action is credited then (_advance_aec)
                pending = float(env._cumulative_rewards[name]) - self._credited[i, k]
                self._ep_return[i, k] += pending
                self._credited[i, k] += pending
                if row < 0:
                    continue
                b.rewards[row, i, k] += pending
                if env.terminations.get(name):  # the game ended with this agent's last action
                    b.terminated[row, i, k] = True
                elif env.truncations.get(name):
                    b.truncated[row, i, k], b.bootstrap[row, i, k] = True, v[k]
            last[i] = v
            team_last[i] = b.values[min(held), i, 0] if held else v[0]
        return last, team_last

    def _hold(self, i: int, k: int, row: int) -> None:
        """Take agent k's last action (row ``row`` of copy i) out of this rollout and keep it for the next one: its
        reward is not all in yet (issue 35: a game won on the next rollout's first move left the loser's −1 on no
        row). Its behaviour log-probability travels with it; its V is taken again by the next rollout's critic."""
        b = self.buf
        assert b.rewards[row, i, k] == 0 and not b.terminated[row, i, k], "a held action was already credited"
        b.alive[row, i, k] = False
        self._held_row[i, k] = row
        self._held_obs[i, k], self._held_state[i, k] = b.obs[row, i], b.state[row, i]
        if b.masks is not None and self._held_masks is not None:
            self._held_masks[i, k] = b.masks[row, i]
        self._held_action[i, k], self._held_logp[i, k] = b.actions[row, i, k], b.logp[row, i, k]

    def _bring_held_rows(self) -> None:
        """Write the held actions into the carry rows, in the order they were taken (so that each column's chain of
        rows stays in time order, and the central one where players alternate: a move between two held ones of a
        player who moved twice in a row stays in the last rollout, docs/multiagent.md), and point the reward
        credit at them."""
        b, c = self.buf, self.carry
        if not (self._held_row >= 0).any():
            return
        for i in range(len(self.envs)):
            held = [int(k) for k in np.argsort(self._held_row[i], kind="stable") if self._held_row[i, k] >= 0]
            for row, k in enumerate(held, start=c - len(held)):
                b.obs[row, i], b.state[row, i] = self._held_obs[i, k], self._held_state[i, k]
                if b.masks is not None and self._held_masks is not None:
                    b.masks[row, i] = self._held_masks[i, k]
                b.actions[row, i, k], b.logp[row, i, k], b.alive[row, i, k] = (
                    self._held_action[i, k],
                    self._held_logp[i, k],
                    True,
                )
                self._last_row[i, k] = self._last_move[i] = row  # the latest held action is the game's last move
        self._held_row[:] = -1
        obs, state = b.obs[:c].reshape(-1, *b.obs.shape[2:]), b.state[:c].reshape(-1, b.state.shape[2])
        b.values[:c] = self._values(obs, state).reshape(b.values[:c].shape)  # V under this rollout's critic

    def close(self) -> None:
        for env in self.envs:
            env.close()
