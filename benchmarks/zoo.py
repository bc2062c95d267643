"""Train the zoo's presets (proxrl/zoo/, `proxrl presets`) and write benchmarks/ZOO.md beside rl-baselines3-zoo's
published figures (issue 33).

Each (algorithm, env) trains its preset for the zoo's step budget (``--budget-scale`` shortens it: such rows are
marked as reduced) on each seed, then evaluates ``--episodes`` fresh episodes: deterministic, except Atari and
MiniGrid, which the zoo evaluates stochastically. Runs go ``--workers`` at a time, one torch thread each. Results
accumulate in benchmarks/zoo_results.json (one entry per algorithm, env and budget; a later run replaces an equal
one), and ZOO.md is written from all of them: env, budget, proxrl's mean ± std over the seeds' evaluations, rl-zoo's
figure (its benchmark.md: one agent, one seed), wall time, steps/s and the CPU. A preset with no result says
"not run here", never a figure.

    python benchmarks/zoo.py --envs CartPole-v1 Acrobot-v1 --budget-scale 0.1     # classic control, reduced
    python benchmarks/zoo.py --algo ppo --seeds 0 1 2                             # every PPO preset, full budgets
    python benchmarks/zoo.py --envs ALE/Pong-v5 ALE/Breakout-v5 --seeds 0         # Atari games share one preset
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

from ray_scaling import cpu_model  # benchmarks/ is the script's folder (imports no Ray at module level)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "zoo_results.json"
STOCHASTIC = ("ALE/", "MiniGrid")
LONG_RUNS = (  # ZOO.md's commands for the full budgets: classic control and Box2D, MuJoCo, the long ones, Atari
    ("Acrobot-v1", "MountainCar-v0", "LunarLander-v3", "LunarLanderContinuous-v3"),
    ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Swimmer-v5", "Reacher-v5", "Pusher-v5"),
    ("InvertedPendulum-v5", "InvertedDoublePendulum-v5", "BipedalWalker-v3", "Humanoid-v5", "CarRacing-v3"),
    ("ALE/Pong-v5", "ALE/Breakout-v5", "ALE/SpaceInvaders-v5", "ALE/Qbert-v5", "ALE/Seaquest-v5"),
    ("ALE/BeamRider-v5", "ALE/Enduro-v5", "ALE/MsPacman-v5", "ALE/RoadRunner-v5", "ALE/Asteroids-v5"),
)  # the zoo evaluates these with sampled actions (exp_manager.py L184)


def train_and_evaluate(algo: str, env: str, seed: int, steps: int, episodes: int) -> dict[str, object]:
    """One seed of ``env``'s preset: its evaluation, wall time and steps/s."""
    import torch

    from proxrl import ALGORITHMS, config, presets

    torch.set_num_threads(1)
    preset = presets.find(algo, env)
    assert preset is not None, f"no {algo} preset for {env}"
    cls = ALGORITHMS[algo]
    overrides = {"seed": seed, "total_steps": steps, "tensorboard": False, "checkpoint_every": 0}
    cfg = config.resolve(cls.config_class, None, overrides, base=preset.values_for(env))
    start = time.perf_counter()
    agent = cls(config=cfg, progress=False).learn()
    wall = time.perf_counter() - start
    deterministic = not env.startswith(STOCHASTIC)
    result = agent.evaluate(episodes, deterministic=deterministic)
    agent.close()
    return {"seed": seed, "eval": float(result["mean_return"]), "wall": wall, "steps": agent.global_step}


def selected(algo: str | None, envs: list[str] | None) -> list[tuple[str, str]]:
    """(algorithm, env) pairs to run: ``envs`` (an Atari game picks the shared preset), else every preset's env."""
    from proxrl import presets

    algos = [algo] if algo else presets.algorithms()
    if envs:
        return [(a, e) for a in algos for e in envs if presets.find(a, e) is not None]
    # the shared Atari preset: one row per game of the zoo's table
    return [(p.algo, env) for a in algos for p in presets.all_presets(a) for env in sorted(p.zoo.keys() - {""})
            or [str(p.values["env"])]]  # fmt: skip


def run(pairs: list[tuple[str, str]], seeds: list[int], scale: float, episodes: int, workers: int) -> list[dict]:
    """Every pair on every seed, ``workers`` at a time; one result entry per pair."""
    from proxrl import presets

    jobs = {}
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        for algo, env in pairs:
            preset = presets.find(algo, env)
            assert preset is not None
            steps = max(1, int(int(preset.values["total_steps"]) * scale))
            for seed in seeds:
                jobs[pool.submit(train_and_evaluate, algo, env, seed, steps, episodes)] = (algo, env, steps)
        done: dict[tuple[str, str, int], list[dict]] = {}
        for future in cf.as_completed(jobs):
            algo, env, steps = jobs[future]
            row = future.result()
            print(f"{algo} {env} seed {row['seed']}: {row['eval']:.2f} after {steps:,} steps ({row['wall']:.0f} s)")
            done.setdefault((algo, env, steps), []).append(row)
    return [
        {
            "algo": a,
            "env": e,
            "steps": s,
            "scale": scale,
            "episodes": episodes,
            "cpu": cpu_model(),
            "load": round(os.getloadavg()[0], 1),  # others' processes on the machine: wall times are upper bounds
            "seeds": sorted(rows, key=lambda r: r["seed"]),
        }  # fmt: skip
        for (a, e, s), rows in sorted(done.items())
    ]


def merge(new: list[dict], path: Path = RESULTS) -> list[dict]:
    """The results file at ``path`` with ``new`` laid over it (same algorithm, env and budget: replaced)."""
    old = json.loads(path.read_text()) if path.exists() else []
    keys = {(r["algo"], r["env"], r["steps"]) for r in new}
    merged = [r for r in old if (r["algo"], r["env"], r["steps"]) not in keys] + new
    merged.sort(key=lambda r: (r["algo"], r["env"], -r["steps"]))
    path.write_text(json.dumps(merged, indent=1) + "\n")
    return merged


def _figure(entry: dict) -> tuple[str, str, str, str]:
    """(budget, proxrl mean ± std, wall time per seed, steps/s) of one result entry."""
    evals = [r["eval"] for r in entry["seeds"]]
    spread = statistics.pstdev(evals) if len(evals) > 1 else 0.0
    reduced = "" if entry["scale"] >= 1 else f" (reduced ×{entry['scale']:g})"
    walls = [r["wall"] for r in entry["seeds"]]
    sps = statistics.mean(r["steps"] / r["wall"] for r in entry["seeds"])
    seeds = f"{len(evals)} seed{'s' * (len(evals) > 1)}"
    wall = f"{statistics.mean(walls):.0f} s"
    return f"{entry['steps']:,}{reduced}", f"{statistics.mean(evals):.2f} ± {spread:.2f} ({seeds})", wall, f"{sps:,.0f}"


def write_markdown(results: list[dict], out: Path) -> None:
    """ZOO.md: one row per result entry, and a "not run here" row for each preset without one."""
    from proxrl import presets

    lines = [
        "# The preset zoo, measured here",
        "",
        "Written by `python benchmarks/zoo.py` from `benchmarks/zoo_results.json`; do not edit by hand. proxrl's",
        "figure is the mean ± std over seeds of each seed's evaluation (10 fresh episodes after training; sampled",
        "actions for Atari and MiniGrid, as the zoo). rl-zoo's figure is its `benchmark.md`",
        "(DLR-RM/rl-baselines3-zoo@22e3ff2, one trained agent evaluated for ~150k steps), cited per row in the",
        "preset's header (`proxrl/zoo/<algo>/<env>.yaml`). A budget marked *reduced* is not the zoo's: such a row",
        "says how far proxrl gets in less, not that it matches the zoo. Wall time is per seed, one torch thread,",
        f"`--workers` runs side by side on the machine named in the CPU column ({os.cpu_count()} cores here), whose",
        "1-minute load average at the end of the run is given: a load above the core count means other processes",
        "shared the cores, and the wall time and steps/s are then upper and lower bounds.",
        "",
        "| algo | env | budget | proxrl (mean ± std) | rl-zoo (published) | wall / seed | steps/s | CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    seen = set()
    for entry in results:
        preset = presets.find(entry["algo"], entry["env"])
        zoo = preset.figure(preset.zoo, entry["env"]) if preset else ""
        budget, mine, wall, sps = _figure(entry)
        lines.append(
            f"| {entry['algo']} | {entry['env']} | {budget} | {mine} | {zoo.split(' (')[0]} | {wall} | {sps} | "
            f"{entry['cpu']} (load {entry.get('load', '?')}) |"
        )
        seen.add((entry["algo"], entry["env"]))
    for algo, env in selected(None, None):
        if (algo, env) not in seen:
            lines.append(f"| {algo} | {env} | — | not run here | | | | |")
    lines += ["", "The full budgets on three seeds, for a machine of its own (hours of CPU each group):", "", "```"]
    lines += [f"python benchmarks/zoo.py --algo ppo --envs {' '.join(group)} --seeds 0 1 2" for group in LONG_RUNS]
    lines += ["python benchmarks/zoo.py --algo pg --seeds 0 1 2", "```", ""]
    out.write_text("\n".join(lines))


def main() -> None:
    """Parse the arguments, run, merge and write ZOO.md."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", help="only this algorithm's presets (ppo, pg)")
    p.add_argument("--envs", nargs="+", help="env ids (default: every preset's)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget-scale", type=float, default=1.0, help="train scale × the zoo's budget (rows marked)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per seed")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE / "ZOO.md")
    p.add_argument("--results", type=Path, default=RESULTS, help="the JSON file results accumulate in")
    args = p.parse_args()
    pairs = selected(args.algo, args.envs)
    if not pairs:
        raise SystemExit("no preset matches; `proxrl presets` lists them")
    results = merge(run(pairs, args.seeds, args.budget_scale, args.episodes, args.workers), args.results)
    write_markdown(results, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
