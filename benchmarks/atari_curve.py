"""The learning curve of a long proxrl Atari run against CleanRL's published result for ``ppo_atari.py``.

Reads the run directory's ``progress.csv`` (the mean raw game score of the last 20 training episodes against env
steps) and draws it. It marks CleanRL's published mean at 10M steps: Pong 20.36 ± 0.20 and Breakout 414.66 ±
28.09 (docs/rl-algorithms/ppo.md in CleanRL's repository). The run itself is:

    proxrl train ppo --config configs/ppo_atari.yaml --env ALE/Pong-v5 \\
        --env-kwargs repeat_action_probability=0.0 --run-dir RUN
    # stopped with Ctrl-C whenever the machine is needed, continued with: proxrl train --resume RUN

    python benchmarks/atari_curve.py RUN --game Pong --out docs/img/ppo_pong_curve.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

CLEANRL_AT_10M = {"Pong": (20.36, 0.20), "Breakout": (414.66, 28.09)}


def main() -> None:
    """Draw the curve; print the last logged steps and score."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--game", default="Pong", choices=sorted(CLEANRL_AT_10M))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(args.run / "progress.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["mean_return"] not in ("", "nan")]
    steps = [float(r["global_step"]) for r in rows]
    scores = [float(r["mean_return"]) for r in rows]
    hours = float(rows[-1]["time"]) / 3600
    mean, std = CLEANRL_AT_10M[args.game]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, scores, label="proxrl (configs/ppo_atari.yaml), mean of the last 20 games")
    ax.errorbar([10_000_000], [mean], yerr=[std], fmt="o", color="C3", label="CleanRL ppo_atari.py at 10M (published)")
    ax.set_xscale("linear")
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"{args.game} score (raw, whole games)")
    ax.set_title(f"PPO on {args.game}: {steps[-1]:,.0f} steps in {hours:.1f} h on 2 CPU cores")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"{args.run}: {steps[-1]:,.0f} steps, last score {scores[-1]:.2f}, {hours:.2f} h; wrote {args.out}")


if __name__ == "__main__":
    main()
