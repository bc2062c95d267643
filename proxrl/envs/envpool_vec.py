"""EnvPool (Weng et al. 2022) as the vector env: ``vectorization: envpool``, for the envs EnvPool has (Atari,
classic control, MuJoCo, ...). EnvPool steps its envs in C++ threads, with Atari's standard preprocessing built
in; its Python object is not a gymnasium ``VectorEnv``, so :class:`EnvPoolVectorEnv` (written here: it is the
project's seam to EnvPool, about 60 lines) gives it that interface:

- autoreset is EnvPool's own, which is gymnasium's NEXT_STEP (the step after an episode's end returns the new
  episode's first observation with reward 0), the mode proxrl's rollout takes everywhere;
- episode statistics in ``RecordEpisodeStatistics``'s info format (``episode``/``_episode``; lengths in agent
  steps, where the gymnasium Atari path counts emulator frames); for Atari they are the raw game's: whole-game
  scores (EnvPool's unclipped ``info['reward']``, until its ``info['terminated']``
  game over), while training sees episodic life and clipped rewards, as the gymnasium path does;
- ``ALE/Pong-v5`` is EnvPool's ``Pong-v5``, with v5's sticky actions (0.25) unless ``env_kwargs`` say otherwise;
  ``env_kwargs`` go to ``envpool.make`` and to the gymnasium env that evaluation plays (and whose spaces the
  policy is built for), so they must be options both take (``repeat_action_probability``, ``full_action_space``).

Evaluation still plays gymnasium's ale-py env (the same preprocessing, real score): EnvPool is for training speed.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from ..errors import ConfigError

INSTALL = 'vectorization=envpool needs EnvPool: pip install -e ".[envpool]" (Linux x86-64 or arm64 wheels)'
STICKY = 0.25  # ale-py v5's repeat_action_probability (Machado et al. 2018), which proxrl's gymnasium path keeps


def envpool_task(env_id: str, env_kwargs: dict[str, Any] | None) -> tuple[str, dict[str, Any], bool]:
    """(EnvPool task id, its make() options, whether it is Atari) for a gymnasium id."""
    try:
        import envpool
    except ImportError:
        raise ConfigError(INSTALL) from None
    atari = env_id.startswith("ALE/")
    task = env_id.rpartition(":")[2].removeprefix("ALE/")
    if task not in envpool.list_all_envs():
        raise ConfigError(
            f"EnvPool has no {task} (for {env_id}); use vectorization=auto, or an id from envpool.list_all_envs()"
        )
    options = {"episodic_life": True, "reward_clip": True, "repeat_action_probability": STICKY} if atari else {}
    return task, {**options, **(env_kwargs or {})}, atari


class EnvPoolVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` EnvPool envs behind gymnasium's ``VectorEnv`` interface, with episode statistics."""

    def __init__(self, env_id: str, num_envs: int, seed: int, env_kwargs: dict[str, Any] | None = None) -> None:
        task, options, self.atari = envpool_task(env_id, env_kwargs)  # first: it says when EnvPool is missing
        import envpool

        try:
            self.pool = envpool.make(task, env_type="gymnasium", num_envs=num_envs, seed=seed, **options)
        except (TypeError, ValueError, AssertionError) as e:
            raise ConfigError(f"env_kwargs {env_kwargs} rejected by EnvPool's {task}: {e}") from None
        self.num_envs = num_envs
        with warnings.catch_warnings():  # EnvPool builds float64 Boxes of classic control as float32 ones
            warnings.filterwarnings("ignore", message=".*precision lowered by casting")
            self.single_observation_space = self.pool.observation_space
        self.single_action_space = self.pool.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}
        self._track(num_envs)

    def _track(self, num_envs: int) -> None:
        """Start the per-env episode statistics: running raw return and length, start time, and which envs'
        next step is EnvPool's reset step."""
        self._returns, self._lengths = np.zeros(num_envs), np.zeros(num_envs, np.int64)
        self._starts = np.full(num_envs, time.perf_counter())
        self._resetting = np.zeros(num_envs, bool)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Every env's first observation (the seed is the one given at construction: EnvPool seeds its envs
        there)."""
        obs, info = self.pool.reset()
        # with episodic life EnvPool restarts only finished games; one between lives goes on, and so does its score
        fresh = np.asarray(info["elapsed_step"]) == 0
        self._returns[fresh], self._lengths[fresh], self._starts[fresh] = 0.0, 0, time.perf_counter()
        self._resetting[:] = False
        return obs, {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every env; ``info['episode']`` holds the statistics of the episodes that end here."""
        obs, reward, terminated, truncated, info = self.pool.step(np.asarray(actions))
        raw = info["reward"] if self.atari else reward
        live = ~self._resetting  # a reset step belongs to no episode
        self._returns[live] += raw[live]
        self._lengths[live] += 1
        game_over = (info["terminated"].astype(bool) if self.atari else terminated) | truncated
        self._resetting = terminated | truncated
        out: dict[str, Any] = {}
        if game_over.any():
            now = time.perf_counter()
            out["episode"] = {"r": self._returns.copy(), "l": self._lengths.copy(), "t": now - self._starts}
            out["_episode"] = game_over.copy()
            self._returns[game_over], self._lengths[game_over], self._starts[game_over] = 0.0, 0, now
        return obs, reward.astype(np.float32), terminated, truncated, out

    def close_extras(self, **kwargs: Any) -> None:
        """Stop EnvPool's threads where its object can (they also stop when it is freed)."""
        if hasattr(self.pool, "close"):
            self.pool.close()
