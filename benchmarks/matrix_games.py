"""The matrix-game table of docs/multiagent.md: which methods reach each one-step game's optimum (the greedy joint
action after training) over 10 seeds. Penalty game [[0, 1], [1, 0]] (optimum 1: the two agents must choose
*different* actions) and the climbing game (optimum 11). Methods: HAPPO (per-agent actors, sequential updates),
IPPO with per-agent actors, and IPPO and MAPPO with one shared actor and no agent id. 8 copies × 16 rows × 40
iterations, lr 1e-3. tests/test_learning.py checks the penalty game's two rows that decide the claim (HAPPO and a
shared MAPPO); this script prints all 80 runs' table (about 2 minutes on 2 cores).

    python benchmarks/matrix_games.py [--seeds 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp

OPTIMUM = {"penalty": 1.0, "climbing": 11.0}
METHODS = (("happo", None), ("ippo", False), ("ippo", True), ("mappo", True))  # (method, share_actor)


def outcome(method: str, game: str, seed: int, share_actor: bool | None) -> float:
    """Train ``method`` on ``game`` with one seed; the payoff of the greedy joint action after training."""
    import numpy as np
    import torch

    from proxrl import MultiAgentPPO

    torch.set_num_threads(1)
    agent = MultiAgentPPO(
        "proxrl.envs.matrix_games",
        method=method,
        env_kwargs={"game": game},
        seed=seed,
        share_actor=share_actor,
        num_envs=8,
        num_steps=16,
        total_steps=8 * 16 * 40,
        lr=1e-3,
        tensorboard=False,
        progress=False,
    ).learn()
    actions = agent.predict(np.ones((1, 2, 1), np.float32))[0]
    payoff = agent.make_env().payoff
    return float(payoff[int(actions[0]), int(actions[1])])


def optimum_hits(
    runs: list[tuple[str, bool | None, str]], seeds: int, workers: int = 2
) -> dict[tuple[str, bool | None, str], int]:
    """For each (method, share_actor, game), the number of seeds 0..seeds-1 whose greedy joint action is optimal."""
    jobs = [(m, g, s, share) for m, share, g in runs for s in range(seeds)]
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        payoffs = list(pool.map(outcome, *zip(*jobs, strict=True)))
    hits = {run: 0 for run in runs}
    for (m, g, _s, share), payoff in zip(jobs, payoffs, strict=True):
        hits[(m, share, g)] += int(payoff == OPTIMUM[g])
    return hits


def main() -> None:
    """Print the markdown table of docs/multiagent.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    hits = optimum_hits([(m, s, g) for m, s in METHODS for g in OPTIMUM], args.seeds, args.workers)
    print("| method | penalty game: optimum 1 reached | climbing game: optimum 11 reached |")
    print("|---|---|---|")
    for m, share in METHODS:
        name = f"`{m}`" + (", shared actor, no agent id" if share else "")
        row = " | ".join(f"{hits[(m, share, g)]} / {args.seeds}" for g in OPTIMUM)
        print(f"| {name} | {row} |")


if __name__ == "__main__":
    main()
