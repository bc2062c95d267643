"""Tiny deterministic environments for tests, registered under the ``proxrl_test/`` namespace on import."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CounterEnv(gym.Env):
    """obs = [step count]; reward 1 per step; terminates at ``terminate_at`` steps (if set); any action space."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        terminate_at: int | None = None,
        action_kind: str = "discrete",
        nan_at: int | None = None,
        raise_at: int | None = None,
    ):
        self.terminate_at, self.nan_at, self.raise_at = terminate_at, nan_at, raise_at
        self.observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = {
            "discrete": spaces.Discrete(2),
            "box": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "multidiscrete": spaces.MultiDiscrete([3, 2]),
            "dict": spaces.Dict({"a": spaces.Discrete(2)}),
        }[action_kind]
        self.count = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)), action
        self.count += 1
        if self.raise_at is not None and self.count >= self.raise_at:
            raise RuntimeError(f"counter env broke at count {self.count}")
        obs = np.array([float(self.count)], dtype=np.float32)
        if self.nan_at is not None and self.count >= self.nan_at:
            obs[:] = np.nan
        terminated = self.terminate_at is not None and self.count >= self.terminate_at
        return obs, 1.0, terminated, False, {}


class TargetEnv(gym.Env):
    """A one-step-reward bandit-like task the policy can visibly improve on: reward = −|a − target| (Box) or
    1 for the right discrete action; 10-step episodes."""

    def __init__(self, action_kind: str = "discrete"):
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = {
            "discrete": spaces.Discrete(3),
            "box": spaces.Box(-2.0, 2.0, (1,), np.float32),
            "multidiscrete": spaces.MultiDiscrete([3, 3]),
        }[action_kind]
        self.kind, self.t = action_kind, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        reward = float(-np.abs(a - 1.0).sum()) if self.kind == "box" else float((a == 1).mean())
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), reward, False, self.t >= 10, {}


for _kind in ("discrete", "box", "multidiscrete"):
    gym.register(f"proxrl_test/Target-{_kind}-v0", entry_point=TargetEnv, kwargs={"action_kind": _kind})
gym.register("proxrl_test/DictAction-v0", entry_point=CounterEnv, kwargs={"action_kind": "dict"}, max_episode_steps=10)
gym.register("proxrl_test/Raise-v0", entry_point=CounterEnv, kwargs={"raise_at": 40}, max_episode_steps=1000)
gym.register("proxrl_test/NaN40-v0", entry_point=CounterEnv, kwargs={"nan_at": 40}, max_episode_steps=1000)
gym.register("proxrl_test/Counter-v0", entry_point=CounterEnv, max_episode_steps=3)
gym.register("proxrl_test/CounterTerm-v0", entry_point=CounterEnv, kwargs={"terminate_at": 2}, max_episode_steps=50)


def string_reward(prompt: str, completion: str, **example: str) -> str:
    """A broken GRPO reward function (returns a string) for the error-message tests."""
    return "yes"


class RecordingBandit(gym.Env):
    """One state (obs = [1]), three actions with rewards ``PAYOFF``, every episode one step long. Each step is
    appended to ``RecordingBandit.steps`` as (action, reward), so a test knows exactly which samples a trainer
    learned from and can redo its update from the equations (the env's reset steps are never recorded)."""

    PAYOFF = (1.0, 0.0, -0.5)
    steps: list[tuple[int, float]] = []

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, dtype=np.float32), {}

    def step(self, action):
        reward = self.PAYOFF[int(action)]
        RecordingBandit.steps.append((int(action), reward))
        return np.ones(1, dtype=np.float32), reward, True, False, {}


gym.register("proxrl_test/RecordingBandit-v0", entry_point=RecordingBandit)


def prompt_and_length_reward(prompt: str, completion: str, **example: str) -> float:
    """A GRPO reward a test can recompute: 10 × the prompt's digit sum (so prompts differ) + the completion's length
    (so completions of one prompt differ)."""
    return 10.0 * sum(int(c) for c in prompt if c.isdigit()) + len(completion)


class ConstantEnv(gym.Env):
    """The same observation and a reward of 1 every step, never terminating: only a time limit ends an episode, so
    V(s) = Σ_k γ^k = 1 / (1 − γ) exactly when truncations are bootstrapped (SB3's infinite-horizon test)."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.full(1, 0.5, dtype=np.float32), {}

    def step(self, action):
        return np.full(1, 0.5, dtype=np.float32), 1.0, False, False, {}


gym.register("proxrl_test/Constant-v0", entry_point=ConstantEnv, max_episode_steps=5)


class ImageEnv(gym.Env):
    """8×8 RGB uint8 frames, two actions, five steps: an image observation space."""

    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros((8, 8, 3), np.uint8), {}

    def step(self, action):
        return np.full((8, 8, 3), 255 * int(action), np.uint8), float(action), False, False, {}


gym.register("proxrl_test/Image-v0", entry_point=ImageEnv, max_episode_steps=5)


# the pixel task lives in the package (proxrl/envs/pixel_tasks.py); its variants for tests:
from proxrl.envs.pixel_tasks import PixelTargetEnv  # noqa: E402

gym.register("proxrl_test/PixelTarget-v0", entry_point=PixelTargetEnv)
gym.register("proxrl_test/PixelTargetFirst-v0", entry_point=PixelTargetEnv, kwargs={"channels": "first"})
gym.register("proxrl_test/PixelTargetDict-v0", entry_point=PixelTargetEnv, kwargs={"dict_obs": True})


class TinyExtractor(__import__("torch").nn.Module):
    """A user's features extractor for tests: a linear layer over the flattened observation → ``out`` features."""

    def __init__(self, observation_space, out: int = 8) -> None:
        import torch

        super().__init__()
        self.linear = torch.nn.Linear(int(np.prod(observation_space.shape)), out)

    def forward(self, obs):
        return self.linear(obs.reshape(obs.shape[0], -1).float()).tanh()


class DictKeysExtractor(__import__("torch").nn.Module):
    """A user's features extractor for a Dict space (SB3's way: it gets ``{key: [B, *shape]}``); it notes the shape
    and dtype of each key it was given and returns the vector key through a linear layer."""

    def __init__(self, observation_space) -> None:
        import torch

        super().__init__()
        self.seen: list[dict] = []
        self.linear = torch.nn.Linear(observation_space["vector"].shape[0], 4)

    def forward(self, obs):
        self.seen.append({k: (tuple(v.shape), v.dtype) for k, v in obs.items()})
        return self.linear(obs["vector"]) + obs["image"].float().mean((1, 2, 3)).unsqueeze(1) / 255


class SumExtractor(__import__("torch").nn.Module):
    """A wrong features extractor for tests: one number per observation ([B], not [B, F])."""

    def __init__(self, observation_space) -> None:
        super().__init__()

    def forward(self, obs):
        return obs.float().sum(1)
