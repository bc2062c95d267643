"""proxrl PPO from a preset, optionally overridden (one seed, one process).

    _proxrl_runner.py PRESET SEED STEPS [CSV_PATH [OVERRIDES_JSON [THRESHOLD]]]

STEPS 0 keeps the preset's budget; THRESHOLD (default 475, CartPole's) is the mean return whose first hit is
reported.
"""

from __future__ import annotations

import json
import sys
import time

from _runner_common import Tracker

from proxrl import PPO, config
from proxrl.algos.ppo import PPOConfig


def main(preset: str, seed: int, steps: int, csv_path: str | None, overrides: dict, threshold: float = 475.0) -> None:
    tracker = Tracker(threshold, csv_path)
    budget = {"total_steps": steps} if steps else {}  # 0: the preset's own budget (and annealing horizon)
    cfg = config.resolve(PPOConfig, preset, {"seed": seed, **budget, "tensorboard": False, **overrides})
    agent = PPO(config=cfg, progress=False)
    seen = 0

    def track(agent: PPO, row: dict) -> None:
        nonlocal seen
        new = agent.progress.num_episodes - seen  # episodes finished in this update are the newest in recent_returns
        for r in list(agent.progress.recent_returns)[max(0, len(agent.progress.recent_returns) - new) :]:
            tracker.episode(r)
        seen = agent.progress.num_episodes
        tracker.check(agent.global_step)

    start = time.perf_counter()
    agent.learn(callback=track)
    tracker.report(agent.global_step, time.perf_counter() - start)


if __name__ == "__main__":
    main(
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None,
        json.loads(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] else {},
        float(sys.argv[6]) if len(sys.argv) > 6 else 475.0,
    )
