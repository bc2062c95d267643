"""Atari through ale-py (its ROMs ship with it) with the standard preprocessing of Mnih et al. (2015), as CleanRL's
``ppo_atari.py`` and SB3's ``AtariWrapper`` apply it:

- training: gymnasium's ``AtariPreprocessing`` (up to 30 no-op starts, frame skip 4 with a max over the last two
  frames, 84 × 84 grayscale), per-env episode statistics of the *raw* game (logged returns are unclipped whole-game
  scores, lengths are agent steps), episodic life (a lost life ends the training episode but not the game), FIRE on
  reset for games that need it, rewards clipped to their sign, a stack of the last 4 frames: observations
  ``[4, 84, 84]`` uint8;
- evaluation: the same without episodic life and without reward clipping, so ``proxrl eval`` (and ``--video``)
  reports the game's real score.

``EpisodicLife`` and ``FireOnReset`` are written here because gymnasium has no equivalent (its
``terminal_on_life_loss`` resets the whole game at a lost life); their behaviour is SB3's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, SupportsFloat, cast

import gymnasium as gym
import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:  # ale-py is an optional dependency: imported where it is registered
    from ale_py import AtariEnv

INSTALL = 'Atari needs ale-py and OpenCV: pip install -e ".[atari]"'
# The default cap of an evaluation episode, in agent steps: 108,000 frames at frame skip 4, the ALE's own
# max_num_frames_per_episode for v5 ids and EnvPool's max_episode_steps (Machado et al. 2018), stated in the unit the
# logs use. A policy that stalls (Breakout without FIRE) plays to it: 10 such episodes are 270,000 CNN steps.
EVAL_MAX_STEPS = 27_000


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


def _ale_env(env: gym.Env[Any, Any]) -> AtariEnv:
    """ale-py's env under ``env``'s wrappers."""
    return cast("AtariEnv", env.unwrapped)  # these wrappers only go on gym.make of an ALE/ id (is_atari)


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

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """A step of the game; terminated also where a life was lost."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = _ale_env(self.env).ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """A new game after a game over, else a no-op step that continues the game after a lost life."""
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = _ale_env(self.env).ale.lives()
        return obs, info


class FireOnReset(gym.Wrapper):
    """Press FIRE after a reset in games that wait for it (Breakout's ball), as SB3's ``FireResetEnv``; with
    ``after_life_loss`` (evaluation, where a lost life does not end the episode) also after each lost life, so a
    deterministic policy that never chooses FIRE plays on instead of idling until the time limit."""

    def __init__(self, env: gym.Env, after_life_loss: bool = False) -> None:
        super().__init__(env)
        self.after_life_loss, self.lives = after_life_loss, 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """A reset, then FIRE (and action 2, as SB3 does)."""
        self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = _ale_env(self.env).ale.lives()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """A step of the game (and FIRE after a lost life, with ``after_life_loss``)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = _ale_env(self.env).ale.lives()
        if self.after_life_loss and lives < self.lives and not (terminated or truncated):
            obs, fired, terminated, truncated, info = self.env.step(1)
            reward = float(reward) + float(fired)  # AtariPreprocessing's frame-skip sums are floats
        self.lives = lives
        return obs, reward, terminated, truncated, info


def _needs_fire(env: gym.Env) -> bool:
    meanings = _ale_env(env).get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


# what :func:`wrappers` does to a training env, as ``proxrl train`` says it (issue 33: nothing said it)
PREPROCESSING = (
    "Atari wrappers: up to 30 no-op starts, frame skip 4 (max of the last 2 frames), 84×84 grayscale, episodic life, "
    "FIRE on reset, rewards clipped to their sign, a stack of 4 frames"
)


def wrappers(training: bool) -> list[Callable[[gym.Env], gym.Env]]:
    """The wrapper chain for one env made by ``gym.make(id, frameskip=1)``: training's or evaluation's."""
    chain: list[Callable[[gym.Env], gym.Env]] = [
        lambda e: gym.wrappers.AtariPreprocessing(
            e, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True
        )
    ]
    if training:
        # The whole game's raw score, and its length in agent steps (4 frames each): above the frame skip, below
        # episodic life and reward clipping. The lengths include the few steps the wrappers take at a reset (FIRE
        # and action 2, a no-op after a lost life): 806 for 802 of the agent's in a game of SpaceInvaders.
        chain += [gym.wrappers.RecordEpisodeStatistics, EpisodicLife]
    chain.append(lambda e: FireOnReset(e, after_life_loss=not training) if _needs_fire(e) else e)
    if training:
        chain.append(
            lambda e: gym.wrappers.TransformReward(e, lambda r: float(np.sign(float(r))))  # reward clipping, CleanRL's
        )
    chain.append(lambda e: gym.wrappers.FrameStackObservation(e, 4))
    return chain
