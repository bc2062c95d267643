"""The wrappers proxrl puts around gymnasium envs, and the normalisers' saved state: :class:`Normalizers` (the running
statistics a vector env normalises with), :class:`ReportEnvErrors` (an env's exception with its own traceback) and
:class:`FlatDict` (a Dict observation as one flat row)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import vector as vw
from gymnasium.wrappers.utils import RunningMeanStd

from ..errors import ConfigError, EnvError
from .flat_dict import DictLayout, select_keys


@dataclass
class Normalizers:
    """The running statistics a vector env normalises with (None where off); saved in checkpoints."""

    obs: vw.NormalizeObservation | None = None
    reward: vw.NormalizeReward | None = None

    def running_stats(self) -> dict[str, RunningMeanStd]:
        """The running mean and variance of each normaliser that is on: ``obs`` (of the observations), ``reward``
        (of the discounted return the rewards are scaled by)."""
        stats = {}
        if self.obs is not None:
            stats["obs"] = self.obs.obs_rms
        if self.reward is not None:
            stats["reward"] = self.reward.return_rms
        return stats

    def state(self) -> dict[str, Any]:
        """Each normaliser's statistics as plain lists and numbers (what a checkpoint holds)."""
        return {
            name: {
                "mean": np.asarray(rms.mean).tolist(),
                "var": np.asarray(rms.var).tolist(),
                "count": float(rms.count),
            }
            for name, rms in self.running_stats().items()
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Set the statistics of :meth:`state` back (a normaliser that is off, or not in ``state``, is left)."""
        for name, rms in self.running_stats().items():
            if name in state:
                rms.mean = np.asarray(state[name]["mean"], dtype=rms.mean.dtype)
                rms.var = np.asarray(state[name]["var"], dtype=rms.var.dtype)
                rms.count = state[name]["count"]


class ReportEnvErrors(gym.Wrapper):
    """Re-raises an exception from the env's ``step``/``reset`` as :class:`EnvError` whose message holds the env's
    own traceback: ``AsyncVectorEnv`` re-raises only ``type(value)`` in the main process and logs the trace."""

    def step(self, action: Any) -> Any:
        try:
            return self.env.step(action)
        except Exception as e:  # noqa: BLE001 - any env failure is reported, with its traceback
            raise EnvError(_describe(e, "step")) from e

    def reset(self, **kwargs: Any) -> Any:
        try:
            return self.env.reset(**kwargs)
        except Exception as e:  # noqa: BLE001
            raise EnvError(_describe(e, "reset")) from e


def _describe(e: Exception, where: str) -> str:
    if isinstance(e, EnvError):
        return str(e)
    return (
        f"{type(e).__name__} in the environment's {where}(): {e}\n--- the environment's traceback ---\n"
        f"{traceback.format_exc().rstrip()}"
    )


class FlatDict(gym.ObservationWrapper):
    """A Dict observation as one flat row (:class:`.flat_dict.DictLayout`: gymnasium's flatten, or the keys'
    bytes side by side when uint8 images sit beside other keys), so rollouts store one array; ``dict_space``
    keeps the (kept keys') Dict space for the policy's encoder, which takes the row apart again. ``keys`` picks the
    keys kept (``obs_keys``; None: every key of a supported space, and ``dropped`` names the others, e.g. a Text
    key such as MiniGrid's ``mission``)."""

    def __init__(self, env: gym.Env, keys: tuple[str, ...] | None = None) -> None:
        super().__init__(env)
        self.dict_space, self.dropped = select_keys(env.observation_space, keys)  # type: ignore[arg-type]
        self.layout = DictLayout(self.dict_space)
        self.observation_space = self.layout.flat_space

    def observation(self, observation: Any) -> Any:
        """The Dict observation's flat row."""
        return self.layout.flatten(observation)


def flatten_dict(env: gym.Env, keys: tuple[str, ...] | None = None) -> gym.Env:
    """``env`` wrapped in :class:`FlatDict` (keeping ``keys``, None: every supported one) when its observations are
    a Dict, else ``env`` (a ConfigError when ``keys`` are given for observations that are no Dict)."""
    if isinstance(env.observation_space, gym.spaces.Dict):
        return FlatDict(env, keys)
    if keys is not None:
        raise ConfigError(
            f"obs_keys={list(keys)} picks keys of Dict observations, and this env's are {env.observation_space}; "
            "remove obs_keys"
        )
    return env


def dropped_keys(env: gym.Env) -> dict[str, str]:
    """The keys a :class:`FlatDict` wrapper in ``env`` dropped (``{key: its space}``), or {}."""
    try:
        dropped = env.get_wrapper_attr("dropped")
    except AttributeError:
        return {}
    return dict(dropped) if isinstance(dropped, dict) else {}


def dict_space_of(env: gym.Env) -> gym.spaces.Dict | None:
    """The Dict space a :class:`FlatDict` wrapper in ``env`` flattened, or None."""
    try:
        space = env.get_wrapper_attr("dict_space")
    except AttributeError:
        return None
    return space if isinstance(space, gym.spaces.Dict) else None
