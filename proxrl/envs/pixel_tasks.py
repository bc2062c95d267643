"""Small image tasks for the CNN encoder, with no download and no renderer, on 36 × 36 uint8 frames:

- ``PixelTarget-v0``: which half of the frame holds the bright square? (an MLP solves it too: a test fixture)
- ``PixelShape-v0``: is the 6 × 6 shape, anywhere in the frame, a filled square or a hollow ring? Local features
  that hold at every position are what a CNN has and an MLP must learn place by place
  (configs/ppo_pixels.yaml, the learning test).

Import ``proxrl.envs.pixel_tasks:PixelShape-v0`` to register them."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


Frame = np.ndarray | dict[str, np.ndarray]  # the image, or (dict_obs) the image and a vector beside it


class PixelTargetEnv(gym.Env[Any, Any]):  # observations of a Box or a Dict space (``dict_obs``)
    """A 36×36 grayscale frame with a bright 6×6 square in its left or right half, at a random place; the action
    names the half (0 left, 1 right): reward 1 if right, 0 if not; 8 frames an episode. ``channels`` puts the
    single channel first or last; ``dict_obs`` adds a 3-vector beside the image."""

    def __init__(self, channels: str = "last", dict_obs: bool = False, task: str = "side") -> None:
        self.task = task
        shape = (1, 36, 36) if channels == "first" else (36, 36, 1)
        image = spaces.Box(0, 255, shape, np.uint8)
        self.channels, self.dict_obs = channels, dict_obs
        self.observation_space = (
            spaces.Dict({"image": image, "vector": spaces.Box(-1.0, 1.0, (3,), np.float32)}) if dict_obs else image
        )
        self.action_space = spaces.Discrete(2)

    def _frame(self) -> Frame:
        self.side = int(self.np_random.integers(2))  # the answer: the half (side), or ring (1) vs square (0)
        frame = np.zeros((36, 36), np.uint8)
        if self.task == "shape":
            row, col = self.np_random.integers(0, 31, size=2)
            frame[row : row + 6, col : col + 6] = 255
            if self.side:
                frame[row + 1 : row + 5, col + 1 : col + 5] = 0
        else:
            row, col = self.np_random.integers(0, 30), self.np_random.integers(0, 12) + 18 * self.side
            frame[row : row + 6, col : col + 6] = 255
        image = frame[None] if self.channels == "first" else frame[..., None]
        if self.dict_obs:
            return {"image": image, "vector": self.np_random.uniform(-1, 1, 3).astype(np.float32)}
        return image

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Frame, dict[str, Any]]:
        """The first frame."""
        super().reset(seed=seed)
        self.t = 0
        return self._frame(), {}

    def step(self, action: Any) -> tuple[Frame, float, bool, bool, dict[str, Any]]:
        """Reward 1 if ``action`` names the answer; the next frame (truncated after 8)."""
        reward = float(int(action) == self.side)
        self.t += 1
        return self._frame(), reward, False, self.t >= 8, {}


# by path, as gymnasium registers its own envs (its EnvCreator type wants a constructor of **kwargs)
gym.register("PixelTarget-v0", entry_point="proxrl.envs.pixel_tasks:PixelTargetEnv")
gym.register("PixelShape-v0", entry_point="proxrl.envs.pixel_tasks:PixelTargetEnv", kwargs={"task": "shape"})
