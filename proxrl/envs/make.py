"""gymnasium helpers: resolve an env id (``module:EnvId`` too), build the vector env the learner steps, and a
single env for evaluation with the training run's observation statistics frozen.

Autoreset mode (DESIGN rule 7): proxrl uses gymnasium's default NEXT_STEP mode everywhere, because native
vectorised envs such as ``CartPoleVectorEnv`` support only that. After a step with terminated or truncated set,
the observation returned is the real final observation; the env's *next* step resets it, ignores the action and
returns reward 0. ``proxrl.rollout`` marks those reset steps invalid and keeps them out of every loss.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.wrappers import vector as vw

from ..errors import ConfigError
from . import atari, no_velocity  # no_velocity registers the NoVel ids
from .envpool_vec import EnvPoolVectorEnv
from .wrappers import Normalizers, ReportEnvErrors, flatten_dict

OBS_CLIP = 10.0  # as SB3's VecNormalize and CleanRL: normalised observations and rewards are clipped to ±10


def resolve_env_id(env: str) -> str:
    """Import ``module`` for ``'module:EnvId'`` (so it can register EnvId) and check the id exists."""
    env_id = env
    if atari.is_atari(env):
        atari.register()
    if env.startswith("MiniGrid-") or env.startswith("BabyAI-"):  # minigrid registers its ids when imported
        try:
            importlib.import_module("minigrid")
        except ImportError:
            raise ConfigError(f"--env {env} needs MiniGrid: pip install 'proxrl[minigrid]'") from None
    if ":" in env:
        module, _, env_id = env.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"--env {env!r}: cannot import module '{module}': {e}") from None
    try:
        gym.spec(env_id)
    except gym.error.Error as e:
        if ":" not in env and _is_pettingzoo_module(env):
            raise ConfigError(
                f"{env} is a PettingZoo environment: train it with a multi-agent method, "
                f"e.g. `proxrl train mappo --env {env}` (or ippo, happo)"
            ) from None
        raise ConfigError(
            f"unknown environment id {env_id!r} ({e}); use a registered gymnasium id such as "
            "'CartPole-v1', or 'my_module:MyEnv-v0' to import a module that registers it"
        ) from None
    return env_id


def _is_pettingzoo_module(name: str) -> bool:
    """True when ``name`` imports as a module with PettingZoo's ``parallel_env`` or ``env`` constructor."""
    try:
        module = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - not a module at all (any import failure): not a PettingZoo env either
        return False
    return hasattr(module, "parallel_env") or hasattr(module, "env")


def parse_env_kwargs(text: str) -> dict[str, Any]:
    """Parse ``--env-kwargs key=value,key=value`` (values read as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise ConfigError(f"--env-kwargs expects key=value[,key=value...], got {item!r}")
        key, _, raw = item.partition("=")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def make_vec_env(
    env: str,
    num_envs: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    vectorization: str = "auto",
    norm_obs: bool = False,
    norm_reward: bool = False,
    gamma: float = 0.99,
    *,
    obs_keys: tuple[str, ...] | None = None,
    hide_obs: tuple[int, ...] | None = None,
) -> tuple[VectorEnv, Normalizers]:
    """A seeded, reset gymnasium vector env with episode statistics (recorded before any normalisation); a Dict
    observation's ``obs_keys`` (None: every supported key) as one flat row, the ``hide_obs`` components zeroed."""
    if vectorization == "envpool":  # EnvPool's C++ envs (Atari with its own standard preprocessing)
        pool = _hidden(EnvPoolVectorEnv(env, num_envs, seed, env_kwargs), hide_obs)
        return _normalized(pool, seed, norm_obs, norm_reward, gamma)
    env_id = resolve_env_id(env)
    spec = gym.spec(env_id)
    mode = vectorization
    is_atari = atari.is_atari(env_id)
    if mode == "auto":  # Atari: gymnasium's sync vector env with the standard wrappers (ale-py's own differ)
        mode = "vector_entry_point" if spec.vector_entry_point is not None and not is_atari else "sync"
    if mode == "vector_entry_point" and spec.vector_entry_point is None:
        raise ConfigError(
            f"vectorization 'vector_entry_point': {env_id} has no native vector version; use 'auto', 'sync' or 'async'"
        )
    # per-env wrapper (sync and async): an env's exception keeps its traceback text across the worker boundary
    wrappers: list[Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]]] | None = None
    if mode in ("sync", "async"):
        hide = [functools.partial(no_velocity.HideObs, hidden=hide_obs)] if hide_obs is not None else []
        wrappers = [ReportEnvErrors, *hide, functools.partial(flatten_dict, keys=obs_keys)]
    kwargs = env_kwargs or {}
    if is_atari and wrappers is not None:  # the standard preprocessing; each env records its raw game's score
        wrappers, kwargs = [ReportEnvErrors, *atari.wrappers(training=True)], atari.make_kwargs(env_kwargs)
    try:
        # gymnasium annotates wrappers as returning a Wrapper; flatten_dict may return the env itself, which it takes
        venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, wrappers=wrappers, **kwargs)  # type: ignore[arg-type]
    except TypeError as e:
        raise ConfigError(f"env_kwargs {env_kwargs} rejected by {env_id}: {e}") from None
    if not (is_atari and wrappers is not None):
        venv = vw.RecordEpisodeStatistics(venv)
    if wrappers is None or is_atari:  # no per-env wrapper hid them
        venv = _hidden(venv, hide_obs)
    return _normalized(venv, seed, norm_obs, norm_reward, gamma)


def _hidden(venv: VectorEnv, hide_obs: tuple[int, ...] | None) -> VectorEnv:
    """``venv`` with the ``hide_obs`` components of its observations zeroed (:mod:`.no_velocity`), after the
    episode statistics and before any normalisation: for vector envs that take no per-env wrapper."""
    if hide_obs is None:
        return venv
    mask = no_velocity.hide_mask(venv.single_observation_space, hide_obs)
    return vw.TransformObservation(venv, lambda o: o * mask)


def _normalized(
    venv: VectorEnv, seed: int, norm_obs: bool, norm_reward: bool, gamma: float
) -> tuple[VectorEnv, Normalizers]:
    """``venv`` with the normalisation wrappers asked for, seeded and reset."""
    norms = Normalizers()
    if norm_obs:
        venv = norms.obs = vw.NormalizeObservation(venv)
        venv = vw.TransformObservation(venv, lambda o: np.clip(o, -OBS_CLIP, OBS_CLIP))
    if norm_reward:
        venv = norms.reward = vw.NormalizeReward(venv, gamma=gamma)
        venv = vw.ClipReward(venv, -OBS_CLIP, OBS_CLIP)
    venv.action_space.seed(seed)
    venv.reset(seed=seed)
    return venv, norms


def make_eval_env(
    env: str,
    env_kwargs: dict[str, Any] | None = None,
    obs_stats: dict[str, Any] | None = None,
    render_mode: str | None = None,
    *,
    obs_keys: tuple[str, ...] | None = None,
    hide_obs: tuple[int, ...] | None = None,
) -> gym.Env:
    """One env for evaluation, its observations as the vector env's (``obs_keys``, ``hide_obs``: see
    :func:`make_vec_env`); with ``obs_stats`` (a ``Normalizers.state()['obs']``), observations are normalised
    with those frozen statistics, exactly as during training."""
    env_id = resolve_env_id(env)
    extra: dict[str, Any] = {"render_mode": render_mode} if render_mode is not None else {}
    is_atari = atari.is_atari(env_id)
    kwargs = atari.make_kwargs(env_kwargs) if is_atari else (env_kwargs or {})
    try:
        e = gym.make(env_id, **extra, **kwargs)
    except TypeError as err:
        raise ConfigError(f"env_kwargs {env_kwargs} rejected by {env_id}: {err}") from None
    if is_atari:  # no episodic life and no reward clipping: the game's real score
        for wrap in atari.wrappers(training=False):
            e = wrap(e)
    if hide_obs is not None:
        e = no_velocity.HideObs(e, hide_obs)
    e = flatten_dict(e, obs_keys)
    if obs_stats is not None:
        e = gym.wrappers.NormalizeObservation(e)
        e.update_running_mean = False
        e.obs_rms.mean = np.asarray(obs_stats["mean"], dtype=e.obs_rms.mean.dtype)
        e.obs_rms.var = np.asarray(obs_stats["var"], dtype=e.obs_rms.var.dtype)
        e.obs_rms.count = obs_stats["count"]
        e = gym.wrappers.TransformObservation(e, lambda o: np.clip(o, -OBS_CLIP, OBS_CLIP), e.observation_space)
    return e
