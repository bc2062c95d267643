"""Reward credit across rollout boundaries in a zero-sum turn-based game (issue 35): MAPPO's collector on 8 copies of
PettingZoo's connect four, random initial policy, rollouts of T turns; prints the sum of every row's team reward
Σ_i r_i over the first ~138 finished games. A zero-sum game must give exactly 0; a reward credited to no row (the
loser's −1 when the winning move opens a rollout) shows as a positive sum.

    python benchmarks/aec_credit.py --num-steps 128 7 1
"""

from __future__ import annotations

import argparse

import torch

from proxrl import MultiAgentPPO


def team_reward_sum(num_steps: int, games: int, seed: int) -> tuple[int, float]:
    """(finished games, Σ of the rows' team rewards) once at least ``games`` games have finished."""
    agent = MultiAgentPPO(
        "pettingzoo.classic.connect_four_v3",
        method="mappo",
        num_steps=num_steps,
        num_envs=8,
        seed=seed,
        tensorboard=False,
        progress=False,
    )
    collector = agent.start_envs()
    finished, total = 0, 0.0
    while finished < games:
        batch = collector.collect()
        finished += int((batch.team_terminated | batch.team_truncated).sum())
        total += float(batch.team_rewards.double().sum())
    collector.close()
    return finished, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-steps", type=int, nargs="+", default=[128, 7, 1])
    parser.add_argument("--games", type=int, default=138)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for t in args.num_steps:
        finished, total = team_reward_sum(t, args.games, args.seed)
        print(f"num_steps={t}: {finished} games, sum of the rows' team rewards {total:+.0f}")


if __name__ == "__main__":
    main()
