"""Hiding observation components: the ``hide_obs`` option and the *NoVel* env ids (partially observed tasks).

A hidden component is **zeroed**, not removed, as rl-zoo3's ``MaskVelocityWrapper`` does (``rl_zoo3/wrappers.py``):
the observation keeps its shape and space, so ``hide_obs: [1, 3]`` on ``CartPole-v1`` is ``CartPoleNoVel-v1``
exactly, a trained policy takes the env's own observations in ``predict``, and figures compare with the zoo's. For
an MLP (or an LSTM) a constant-zero input is the same as no input: its weights multiply 0, so they neither act nor
receive a gradient; with ``norm_obs`` it stays 0 ((0 − 0)/√(0 + ε)).

The NoVel ids are registered in gymnasium when this module is imported (``proxrl.envs`` imports it), with the
indices rl-zoo3 hides (its ``velocity_indices``): CartPole [ẋ, θ̇] = [1, 3], Pendulum [θ̇] = [2], MountainCar and
MountainCarContinuous [velocity] = [1], LunarLander(Continuous) [vx, vy, ω] = [2, 3, 5].
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..errors import ConfigError

# the base id → the indices of its velocity components (rl-zoo3's MaskVelocityWrapper.velocity_indices)
VELOCITY_INDICES: dict[str, tuple[int, ...]] = {
    "CartPole-v1": (1, 3),
    "Pendulum-v1": (2,),
    "MountainCar-v0": (1,),
    "MountainCarContinuous-v0": (1,),
    "LunarLander-v3": (2, 3, 5),
    "LunarLanderContinuous-v3": (2, 3, 5),
}


def no_velocity_id(base: str) -> str:
    """``CartPole-v1`` → ``CartPoleNoVel-v1`` (rl-zoo3's naming)."""
    name, _, version = base.rpartition("-")
    return f"{name}NoVel-{version}"


def hide_mask(space: spaces.Space[Any], hidden: tuple[int, ...], where: str = "hide_obs") -> np.ndarray:
    """The 0/1 mask ``[D]`` that zeroes the ``hidden`` indices of a flat Box ``space`` (a ConfigError naming
    ``where`` when the space is not a flat Box or an index is out of range)."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ConfigError(
            f"{where} hides components of a flat Box observation, and this env's observations are {space}; "
            "remove hide_obs (for Dict observations, pick keys with obs_keys)"
        )
    size = int(space.shape[0])
    bad = [i for i in hidden if not -size <= i < size]
    if bad:
        raise ConfigError(f"{where}={list(hidden)}: indices {bad} are outside the observation's 0..{size - 1}")
    mask = np.ones(size, dtype=space.dtype)
    mask[list(hidden)] = 0
    return mask


class HideObs(gym.ObservationWrapper):
    """Observations with the components ``hidden`` (indices of a flat Box) set to 0; the space is unchanged."""

    def __init__(self, env: gym.Env, hidden: tuple[int, ...]) -> None:
        super().__init__(env)
        self.hidden = tuple(hidden)
        self.mask = hide_mask(env.observation_space, self.hidden)

    def observation(self, observation: Any) -> Any:
        """The observation with the hidden components zeroed."""
        return observation * self.mask


def make_no_velocity(base: str, hidden: tuple[int, ...], **kwargs: Any) -> gym.Env:
    """The entry point of the NoVel ids: ``gym.make(base, **kwargs)`` with ``hidden`` zeroed."""
    return HideObs(gym.make(base, **kwargs), tuple(hidden))


def register() -> None:
    """Register every ``<Name>NoVel-v<k>`` id (once; its base env's time limit applies)."""
    for base, hidden in VELOCITY_INDICES.items():
        env_id = no_velocity_id(base)
        if env_id in gym.registry or base not in gym.registry:  # (Box2D ids exist even without box2d installed)
            continue
        spec = gym.spec(base)
        gym.register(  # the same limit and threshold as the base (its own TimeLimit truncates at the same step)
            env_id,
            entry_point="proxrl.envs.no_velocity:make_no_velocity",
            kwargs={"base": base, "hidden": list(hidden)},
            max_episode_steps=spec.max_episode_steps,
            reward_threshold=spec.reward_threshold,
        )


register()
