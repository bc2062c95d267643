"""PPO on MuJoCo HalfCheetah, side by side: proxrl (``configs/ppo_halfcheetah.yaml``) vs CleanRL's
``ppo_continuous_action.py``, with CleanRL's hyperparameters on both sides (issue 4's continuous-control goal).

Each run is a fresh process; contenders alternate within a seed. Per run: env steps/s of the training loop, the
final mean return (mean of the last 20 training episodes, undiscounted and before reward normalisation, the same
measure on both sides), the step at which that mean first reaches CleanRL's published return, and peak RSS.
Prints a Markdown table with medians and ratios. This is a benchmark, not a CI test (1M steps take ~15-30 min per
run on 2 cores); ``--steps 100000`` gives a quick steps/s-only comparison (returns at 100k steps mean little).

    MUJOCO=1 bash benchmarks/setup_cleanrl_venv.sh      # once: CleanRL's interpreter with mujoco==2.3.3
    python benchmarks/mujoco_vs_cleanrl.py --cleanrl PATH/TO/cleanrl/cleanrl/ppo_continuous_action.py \\
        --seeds 0 1 2 [--steps 1000000]

proxrl steps HalfCheetah-v5 (gymnasium 1.x); CleanRL pins gymnasium 0.29, which has only HalfCheetah-v4. With
the same mujoco (2.3.3 on both sides) the two give identical trajectories and rewards for the same actions: v5
changed HalfCheetah's defaults and info keys only. Threads: as in cartpole_vs_sb3.py, each side keeps its own
default (proxrl: 1 torch thread; CleanRL: torch's default, all cores). ``--cleanrl-threads 0 1`` adds CleanRL with
OMP_NUM_THREADS=1, as CleanRL's own benchmark/ppo.sh runs it: on a shared 2-core machine torch's default of 2
threads stalls in every parallel region whenever another process holds a core (10x slower updates here).
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from cartpole_vs_sb3 import fmt, median

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PRESET = ROOT / "configs" / "ppo_halfcheetah.yaml"
PROXRL_ENV, CLEANRL_ENV = "HalfCheetah-v5", "HalfCheetah-v4"
# CleanRL's published ppo_continuous_action return on HalfCheetah-v4 at 1M steps: 1442.64 ± 46.03 (3 seeds,
# tag pr-424), docs/benchmark/ppo_continuous_action.md, shown at https://docs.cleanrl.dev/rl-algorithms/ppo/
PUBLISHED = 1442.64
PUBLISHED_TEXT = "1442.64 ± 46.03 (HalfCheetah-v4, 1M steps, 3 seeds; docs.cleanrl.dev/rl-algorithms/ppo, tag pr-424)"
PROXRL = "proxrl (ppo_halfcheetah.yaml)"


def cleanrl_name(threads: int) -> str:
    return f"CleanRL ppo_continuous_action.py ({f'OMP_NUM_THREADS={threads}' if threads else 'torch default threads'})"


def run(cmd: list[str], env: dict[str, str], cwd: Path, cleanrl_csv: Path | None = None) -> dict:
    """Run one contender in ``cwd``; return its result with peak RSS in MiB. With ``cleanrl_csv``, parse
    CleanRL's stdout (episodic returns, SPS) and write a progress.csv in proxrl's format from it."""
    cwd.mkdir(parents=True, exist_ok=True)
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    result: dict = {}
    recent: collections.deque[float] = collections.deque(maxlen=20)
    rows: list[tuple[int, float, float]] = []
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
        elif cleanrl_csv is not None:
            m = re.match(r"global_step=(\d+), episodic_return=\[?([-\d.e+]+)", line)
            if m:
                step = int(m.group(1))
                recent.append(float(m.group(2)))
                mean = sum(recent) / len(recent)
                rows.append((step, time.time() - start, mean))
                if "hit_step" not in result and len(recent) == 20 and mean >= PUBLISHED:
                    result["hit_step"] = step
            elif m := re.match(r"SPS: (\d+)", line):
                result["sps"] = int(m.group(1))  # the last print covers the whole run
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    if status != 0:
        raise RuntimeError(f"{cmd} failed:\n{stderr[-3000:]}")
    if cleanrl_csv is not None:
        result.setdefault("hit_step", None)
        result["final_return"] = sum(recent) / len(recent) if recent else None
        with open(cleanrl_csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["global_step", "time", "mean_return"])
            w.writerows((s, f"{t:.3f}", f"{r:.2f}") for s, t, r in rows)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    result["wall_seconds"] = time.time() - start
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--cleanrl",
        help="path to CleanRL's cleanrl/ppo_continuous_action.py (not shipped with proxrl); "
        "without it only proxrl runs",
    )
    p.add_argument("--cleanrl-python", default=str(ROOT / ".venv-cleanrl" / "bin" / "python"))
    p.add_argument(
        "--cleanrl-threads",
        type=int,
        nargs="+",
        default=[0],
        help="one CleanRL contender per value: its OMP_NUM_THREADS (0: unset, torch's default)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=1_000_000, help="env steps per run (also the lr-annealing horizon)")
    p.add_argument("--out-dir", default=str(ROOT / "runs" / "bench-mujoco"))
    args = p.parse_args()

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    out = Path(args.out_dir).resolve()
    contenders: dict[str, list[dict]] = {PROXRL: []}  # table order: proxrl, then CleanRL as --cleanrl-threads
    contenders.update({cleanrl_name(t): [] for t in (args.cleanrl_threads if args.cleanrl else [])})
    for seed in args.seeds:
        jobs = [
            (
                PROXRL,
                [
                    sys.executable,
                    str(HERE / "_proxrl_runner.py"),
                    str(PRESET),
                    str(seed),
                    str(args.steps),
                    str(out / f"proxrl_s{seed}" / "progress.csv"),
                    "",
                    str(PUBLISHED),
                ],
                0,
                "proxrl",
            )
        ]
        for t in args.cleanrl_threads if args.cleanrl else []:
            jobs.append(
                (
                    cleanrl_name(t),
                    [
                        args.cleanrl_python,
                        str(Path(args.cleanrl).resolve()),
                        "--seed",
                        str(seed),
                        "--env-id",
                        CLEANRL_ENV,
                        "--total-timesteps",
                        str(args.steps),
                        "--no-cuda",
                    ],
                    t,
                    f"cleanrl{t or ''}",
                )
            )
        if seed % 2:  # alternate who goes first
            jobs.reverse()
        for name, cmd, threads, label in jobs:
            cwd = out / f"{label}_s{seed}"  # CleanRL writes its runs/ here
            cleanrl_csv = cwd / "progress.csv" if label != "proxrl" else None
            run_env = dict(env, OMP_NUM_THREADS=str(threads)) if threads else env
            r = run(cmd, run_env, cwd, cleanrl_csv)
            if cleanrl_csv:
                r["steps"] = args.steps // 2048 * 2048  # CleanRL runs total_timesteps // batch_size updates
            r["seed"] = seed
            contenders.setdefault(name, []).append(r)
            print(
                f"{name} seed {seed}: {fmt(r['sps'])} steps/s, final mean return {fmt(r['final_return'], ',.1f')}"
                f" after {fmt(r.get('steps'))} steps, peak RSS {r['peak_rss_mib']:.0f} MiB, "
                f"wall {r['wall_seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    print(
        f"PPO on HalfCheetah, {args.steps:,} steps per run; proxrl on {PROXRL_ENV} (gymnasium 1.x), CleanRL on "
        f"{CLEANRL_ENV} (gymnasium 0.29.1): same dynamics and reward with the same mujoco.\n"
    )
    lines = [
        f"| contender | seed | steps | steps/s | final mean return (last 20 episodes) | "
        f"steps to {PUBLISHED:,.0f} | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    med = {}
    for name, runs in contenders.items():
        for r in sorted(runs, key=lambda r: r["seed"]):
            lines.append(
                f"| {name} | {r['seed']} | {fmt(r.get('steps'))} | {fmt(r['sps'])} | "
                f"{fmt(r['final_return'], ',.1f')} | {fmt(r['hit_step'])} | {r['peak_rss_mib']:.0f} |"
            )
        med[name] = {k: median([r.get(k) for r in runs]) for k in ("sps", "final_return", "hit_step", "peak_rss_mib")}
        m = med[name]
        lines.append(
            f"| **{name}** | median | | **{fmt(m['sps'])}** | **{fmt(m['final_return'], ',.1f')}** | "
            f"**{fmt(m['hit_step'])}** | **{fmt(m['peak_rss_mib'])}** |"
        )
    print("\n".join(lines))

    def ratio(key: str, other: str) -> str:
        x, y = med.get(PROXRL, {}).get(key), med.get(other, {}).get(key)
        return "—" if not x or not y else f"{x / y:.2f}"

    print(f"\n- CleanRL's published return: {PUBLISHED_TEXT}")
    final = med[PROXRL]["final_return"]
    print(f"- proxrl's median final return / published: {fmt(None if final is None else final / PUBLISHED, '.2f')}")
    for t in args.cleanrl_threads if args.cleanrl else []:
        other = cleanrl_name(t)
        print(f"- steps/s, proxrl / {other}: {ratio('sps', other)}")
        print(f"- final mean return, proxrl / {other} (measured here): {ratio('final_return', other)}")
        print(f"- peak RSS, proxrl / {other}: {ratio('peak_rss_mib', other)}")
    labels = ["proxrl"] + [f"cleanrl{t or ''}" for t in (args.cleanrl_threads if args.cleanrl else [])]
    print(
        "\nlearning curves: proxrl plot "
        + " ".join(f"{lab}={out}/{lab}_s{s}" for lab in labels for s in args.seeds)
        + " --out benchmarks/mujoco_vs_cleanrl.png"
    )


if __name__ == "__main__":
    main()
