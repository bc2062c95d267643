"""Atari through ale-py (its ROMs ship with it) with the standard preprocessing of Mnih et al. (2015), as CleanRL's
``ppo_atari.py`` and SB3's ``AtariWrapper`` apply it:

- training: per-env episode statistics on the *raw* game (so logged returns are unclipped whole-game scores), then
  gymnasium's ``AtariPreprocessing`` (up to 30 no-op starts, frame skip 4 with a max over the last two frames,
  84 × 84 grayscale), episodic life (a lost life ends the training episode but not the game), FIRE on reset for
  games that need it, rewards clipped to their sign, a stack of the last 4 frames: observations ``[4, 84, 84]``
  uint8;
- evaluation: the same without episodic life and without reward clipping, so ``proxrl eval`` (and ``--video``)
  reports the game's real score.

``EpisodicLife`` and ``FireOnReset`` are written here because gymnasium has no equivalent (its
``terminal_on_life_loss`` resets the whole game at a lost life); their behaviour is SB3's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from ..errors import ConfigError

INSTALL = 'Atari needs ale-py and OpenCV: pip install -e ".[atari]"'


def is_atari(env_id: str) -> bool:
    """True for an ale-py id (``ALE/Breakout-v5``)."""
    return env_id.startswith("ALE/")


def register() -> None:
    """Register ale-py's environments with gymnasium (a clear error if ale-py or OpenCV is missing)."""
    try:
        import ale_py
        import cv2  # noqa: F401 - AtariPreprocessing resizes with OpenCV
    except ImportError:
        raise ConfigError(INSTALL) from None
    gym.register_envs(ale_py)


def make_kwargs(env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """ale-py's constructor arguments: frame skipping is the preprocessing's (frameskip=1 underneath); v5's sticky
    actions (repeat_action_probability 0.25, Machado et al. 2018) stay unless overridden."""
    return {"frameskip": 1, **(env_kwargs or {})}


class EpisodicLife(gym.Wrapper):
    """A lost life ends the (training) episode; the next reset continues the same game with a no-op step, and only
    a game over resets the emulator (SB3's ``EpisodicLifeEnv``)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives, self.game_over = 0, True

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> Any:
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]
        return obs, info


class FireOnReset(gym.Wrapper):
    """Press FIRE after a reset in games that wait for it (Breakout's ball), as SB3's ``FireResetEnv``; with
    ``after_life_loss`` (evaluation, where a lost life does not end the episode) also after each lost life, so a
    deterministic policy that never chooses FIRE plays on instead of idling until the time limit."""

    def __init__(self, env: gym.Env, after_life_loss: bool = False) -> None:
        super().__init__(env)
        self.after_life_loss, self.lives = after_life_loss, 0

    def reset(self, **kwargs: Any) -> Any:
        self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]
        return obs, info

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]
        if self.after_life_loss and lives < self.lives and not (terminated or truncated):
            obs, fired, terminated, truncated, info = self.env.step(1)
            reward += fired
        self.lives = lives
        return obs, reward, terminated, truncated, info


def _needs_fire(env: gym.Env) -> bool:
    meanings = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
    return len(meanings) >= 3 and meanings[1] == "FIRE"


def wrappers(training: bool) -> list[Callable[[gym.Env], gym.Env]]:
    """The wrapper chain for one env made by ``gym.make(id, frameskip=1)``: training's or evaluation's."""
    chain: list[Callable[[gym.Env], gym.Env]] = []
    if training:
        chain.append(gym.wrappers.RecordEpisodeStatistics)  # the raw game's score and length, before any change
    chain.append(
        lambda e: gym.wrappers.AtariPreprocessing(
            e, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True
        )
    )
    if training:
        chain.append(EpisodicLife)
    chain.append(lambda e: FireOnReset(e, after_life_loss=not training) if _needs_fire(e) else e)
    if training:
        chain.append(
            lambda e: gym.wrappers.TransformReward(e, lambda r: float(np.sign(r)))  # reward clipping, CleanRL's
        )
    chain.append(lambda e: gym.wrappers.FrameStackObservation(e, 4))
    return chain
