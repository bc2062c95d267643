"""PettingZoo environments for the multi-agent trainers: loading by module path (``parallel_env`` preferred over
``env``), SuperSuit's frame preprocessing for pixel envs, and :class:`AgentSpec`, what the networks and the
collector need to know about an environment's agents."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from ..errors import ConfigError
from ..policies.actor_critic import warn_if_flattened_image
from ..policies.encoders import fits_nature_cnn, is_image


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


def _obs_space(space: spaces.Space[Any]) -> spaces.Space[Any]:
    return space["observation"] if isinstance(space, spaces.Dict) and "observation" in space.spaces else space


def split_observation(obs: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(flat observation, action mask or None) from a PettingZoo observation; its dtype is the buffer's business
    (float32 rows, or uint8 rows for images)."""
    if isinstance(obs, dict) and "observation" in obs:
        return np.asarray(obs["observation"]).reshape(-1), obs.get("action_mask")
    return np.asarray(obs).reshape(-1), None


def _flat_size(space: spaces.Space[Any]) -> int:
    """The length of an agent's flattened observation (a ConfigError for a space without a fixed shape)."""
    if space.shape is None:
        raise ConfigError(
            f"observation space {space} has no fixed shape: multi-agent envs need Box or Discrete observations "
            "(or a Dict of 'observation' and 'action_mask')"
        )
    return int(np.prod(space.shape))


def _image_shape(obs_spaces: list[spaces.Space[Any]]) -> tuple[int, ...] | None:
    """The shape every agent's uint8 image observation has, or None (not images, or of different shapes)."""
    shapes = {tuple(s.shape or ()) for s in obs_spaces if is_image(s)}  # an image is a Box: it has a shape
    return shapes.pop() if len(shapes) == 1 and all(is_image(s) for s in obs_spaces) else None


@dataclass
class AgentSpec:
    """What the networks need to know about an environment's agents."""

    names: list[str]
    obs_dims: list[int]
    action_spaces: list[spaces.Space[Any]]
    state_dim: int
    env_state: bool  # the global state comes from env.state() (else: all observations concatenated)
    has_masks: bool
    image_shape: tuple[int, ...] | None = None  # every agent sees a uint8 image of this shape, read by the CNN

    @property
    def obs_dtype(self) -> type:
        """The rollout's observation dtype: uint8 for images (scaled on the learner), else float32."""
        return np.uint8 if self.image_shape else np.float32


def _cnn_image(obs_spaces: list[spaces.Space[Any]], policy: str, image_channels: str) -> tuple[int, ...] | None:
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
    dims = [_flat_size(_obs_space(s)) for s in obs_spaces]
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
