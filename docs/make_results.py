"""Learning curves and the results table of the single-agent presets on CartPole-v1 and Acrobot-v1.

Trains every preset × environment × seed (two runs at a time, one torch thread each) into
``runs/docs/<preset>_<env>_s<seed>``, draws one plot per preset × environment (mean and min–max band over
the seeds) into ``docs/img/<preset>__<env>.png``, and writes ``docs/results.md``. The metric is the mean
return of the last 20 training episodes (``mean_return`` in ``progress.csv``).

    python docs/make_results.py                       # everything (~40 min on 2 cores)
    python docs/make_results.py --presets ppo_cartpole --envs acrobot --seeds 0 1
    python docs/make_results.py --no-train            # re-plot and re-tabulate existing runs
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
PRESETS = ("reinforce_cartpole", "pg_gae_cartpole", "offpolicy_pg_cartpole", "ppo_cartpole", "ppo_kl_cartpole",
           "ppo_adaptive_kl_cartpole", "ppo_clip_kl_cartpole")
ENVS = {"cartpole": ("CartPole-v1", 475.0), "acrobot": ("Acrobot-v1", -100.0)}  # short name: (gym id, threshold)


def run_dir(preset: str, env: str, seed: int) -> Path:
    return REPO / "runs" / "docs" / f"{preset}_{env}_s{seed}"


def train(preset: str, env: str, seed: int, steps: int) -> tuple[str, float, str | None]:
    """Train one run in a worker; return (run directory, wall seconds, traceback or None)."""
    import torch

    from proxrl import ALGORITHMS, config

    torch.set_num_threads(1)
    out, start = run_dir(preset, env, seed), time.perf_counter()
    try:
        path = CONFIGS / f"{preset}.yaml"
        cls = ALGORITHMS[config.read_yaml(path)["algo"]]
        cfg = config.resolve(cls.config_class, path, {"env": ENVS[env][0], "seed": seed, "total_steps": steps,
                                                   "tensorboard": False, "stop_return": None, "checkpoint_every": 0})
        cls(config=cfg, run_dir=out, progress=False).learn()
        error = None
    except Exception:
        error = traceback.format_exc()
    return str(out), time.perf_counter() - start, error


def method(preset: str) -> str:
    """The algorithm and its advantage or objective, from the preset's YAML."""
    from proxrl import config

    v = config.read_yaml(CONFIGS / f"{preset}.yaml")
    if v["algo"] == "offpolicy_pg":
        return f"offpolicy_pg, Q̂ V-trace{' − V' if v.get('baseline', True) else ''}, c̄={v.get('max_weight', 1.0):g}"
    key = "advantage" if v["algo"] == "pg" else "objective"
    return f"{v['algo']}, {key}={v.get(key, 'gae' if key == 'advantage' else 'clip')}"


def summary(dirs: list[Path], threshold: float) -> tuple[str, str, str]:
    """(median final mean-20 return, min–max, steps to threshold per seed) over the runs in ``dirs``."""
    from proxrl.logging import read_progress

    finals, reached = [], []
    for d in dirs:
        rows = [r for r in read_progress(d) if r["mean_return"] == r["mean_return"]]
        finals.append(rows[-1]["mean_return"] if rows else float("nan"))
        hit = next((r["global_step"] for r in rows if r["mean_return"] >= threshold), None)
        reached.append(f"{int(hit):,}" if hit is not None else "—")
    finals = [f for f in finals if f == f]  # no finished episode: NaN
    if not finals:
        return "—", "—", " / ".join(reached)
    return f"{statistics.median(finals):.1f}", f"{min(finals):.1f} – {max(finals):.1f}", " / ".join(reached)


def write_table(presets: list[str], envs: list[str], seeds: list[int], steps: dict[str, int], wall: float) -> Path:
    head = ["Method", "Preset"]
    for env in envs:
        name, threshold = ENVS[env]
        head += [f"{name}: median", "min – max", f"steps to {threshold:g} (" + " / ".join(f"s{s}" for s in seeds) + ")"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for preset in presets:
        cells = [method(preset), f"`{preset}`"]
        for env in envs:
            dirs = [run_dir(preset, env, s) for s in seeds]
            cells += summary(dirs, ENVS[env][1]) if all((d / "progress.csv").is_file() for d in dirs) else ["n/a"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    import torch

    budgets = ", ".join(f"{ENVS[e][0]} {steps[e]:,} steps" for e in envs)
    text = (
        "# Results: the single-agent presets on CartPole-v1 and Acrobot-v1\n\n"
        f"Each preset trained as is except for the environment and the budget ({budgets}), seeds "
        f"{', '.join(map(str, seeds))}, no early stop. Return = mean return of the last 20 training episodes; "
        "*median* and *min – max* are over seeds of its value at the end of training; *steps to* is the first "
        "environment step at which it reached the threshold, per seed (— never). Curves: "
        "`docs/img/<preset>__<env>.png`.\n\n" + "\n".join(lines) + "\n\n"
        f"Produced by `{' '.join(['python', 'docs/make_results.py', *sys.argv[1:]])}` on "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, "
        f"2 runs at a time, 1 torch thread each, shared with other jobs), Python {platform.python_version()}, "
        f"torch {torch.__version__}; wall time {wall / 60:.1f} min.\n"
    )
    out = REPO / "docs" / "results.md"
    out.write_text(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS, metavar="PRESET")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps-cartpole", type=int, default=150_000)
    parser.add_argument("--steps-acrobot", type=int, default=150_000)
    parser.add_argument("--no-train", action="store_true", help="only plot and tabulate existing runs")
    args = parser.parse_args()
    steps = {"cartpole": args.steps_cartpole, "acrobot": args.steps_acrobot}
    start = time.perf_counter()
    if not args.no_train:
        jobs = [(p, e, s, steps[e]) for p in args.presets for e in args.envs for s in args.seeds]
        with cf.ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
            for future in cf.as_completed([pool.submit(train, *job) for job in jobs]):
                out, secs, error = future.result()
                print(f"{Path(out).name}: {'ERROR' if error else 'done'} ({secs:.0f} s)", flush=True)
                if error:
                    print(error, file=sys.stderr, flush=True)

    from proxrl.plotting import plot_runs

    for preset in args.presets:
        for env in args.envs:
            dirs = [run_dir(preset, env, s) for s in args.seeds]
            if all((d / "progress.csv").is_file() for d in dirs):
                title = f"{method(preset)} on {ENVS[env][0]} ({len(dirs)} seeds)"
                png = plot_runs([f"{preset}={d}" for d in dirs], REPO / "docs" / "img" / f"{preset}__{env}.png",
                                title=title)
                print(f"wrote {png.relative_to(REPO)}")
    table = write_table(args.presets, args.envs, args.seeds, steps, time.perf_counter() - start)
    print(f"wrote {table.relative_to(REPO)}")


if __name__ == "__main__":
    main()
