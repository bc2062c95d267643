"""Stable-Baselines3 PPO on CartPole-v1 with rl-zoo3's tuned hyperparameters (one seed, one process)."""

from __future__ import annotations

import sys
import time

from _runner_common import Tracker
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env


def linear(start: float):
    return lambda progress_remaining: progress_remaining * start


class Track(BaseCallback):
    def __init__(self, tracker: Tracker) -> None:
        super().__init__()
        self.tracker = tracker

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.tracker.episode(float(info["episode"]["r"]))
        return True

    def _on_rollout_end(self) -> None:
        self.tracker.check(self.num_timesteps)


def main(seed: int, steps: int, csv_path: str | None) -> None:
    tracker = Tracker(475.0, csv_path)
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=linear(1e-3),
        clip_range=linear(0.2),
        seed=seed,
        device="cpu",
        verbose=0,
    )
    start = time.perf_counter()
    model.learn(steps, callback=Track(tracker))
    tracker.report(model.num_timesteps, time.perf_counter() - start)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
