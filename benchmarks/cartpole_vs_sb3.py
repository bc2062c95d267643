"""PPO on CartPole-v1, side by side: proxrl vs Stable-Baselines3 (rl-zoo3's tuned hyperparameters, identical on
both sides) and, optionally, proxrl vs CleanRL's ``ppo.py`` (CleanRL's default hyperparameters on both sides).

Each run is a fresh process (so wall time includes process start and imports); contenders alternate within a
seed. Per run: env steps/s of the training loop, steps and seconds (from process start) until the mean return
of the last 20 episodes first reaches 475, and peak RSS. Prints a Markdown table with medians and ratios.

    python benchmarks/cartpole_vs_sb3.py --seeds 0 1 2 --steps 50000 [--cleanrl PATH/TO/cleanrl/ppo.py]

CleanRL pins gymnasium 0.29 (its episode logging reads ``final_info``); give it its own interpreter with
``--cleanrl-python`` (``bash benchmarks/setup_cleanrl_venv.sh`` makes ``.venv-cleanrl``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ZOO_PRESET = ROOT / "configs" / "ppo_cartpole.yaml"
FAST_PRESET = ROOT / "configs" / "ppo_cartpole_fast.yaml"
# CleanRL ppo.py defaults, expressed as proxrl config keys (clip_vloss and lr annealing on, as CleanRL)
CLEANRL_DEFAULTS = {
    "num_envs": 4,
    "num_steps": 128,
    "num_epochs": 4,
    "num_minibatches": 4,
    "lr": 2.5e-4,
    "anneal_lr": True,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_eps": 0.2,
    "anneal_clip": False,
    "clip_vloss": True,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
}


def run(cmd: list[str], env: dict[str, str], parse_cleanrl: bool = False) -> dict:
    """Run one contender; return its RESULT (or parsed CleanRL output) with peak RSS in MiB."""
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    result: dict = {}
    recent: list[float] = []
    sps = None
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
        elif parse_cleanrl:
            m = re.match(r"global_step=(\d+), episodic_return=\[?([-\d.e+]+)", line)
            if m:
                recent = (recent + [float(m.group(2))])[-20:]
                if "hit_step" not in result and len(recent) == 20 and sum(recent) / 20 >= 475:
                    result["hit_step"], result["hit_seconds"] = int(m.group(1)), time.time() - start
            m = re.match(r"SPS: (\d+)", line)
            if m:
                sps = int(m.group(1))
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    if status != 0:
        raise RuntimeError(f"{cmd} failed:\n{stderr[-2000:]}")
    if parse_cleanrl:
        result.setdefault("hit_step", None)
        result.setdefault("hit_seconds", None)
        result["sps"] = sps
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    result["wall_seconds"] = time.time() - start
    return result


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v: float | None, spec: str = ",.0f") -> str:
    return "—" if v is None else format(v, spec)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--cleanrl", help="path to CleanRL's cleanrl/ppo.py (not shipped with proxrl)")
    p.add_argument("--cleanrl-python", default=str(ROOT / ".venv-cleanrl" / "bin" / "python"))
    p.add_argument("--cleanrl-steps", type=int, default=100_000)
    p.add_argument("--out-dir", default=str(ROOT / "runs" / "bench"))
    args = p.parse_args()

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    py = sys.executable
    contenders: dict[str, list[dict]] = {}
    for seed in args.seeds:
        jobs = [
            (
                "proxrl (zoo hyperparameters)",
                [
                    py,
                    str(HERE / "_proxrl_runner.py"),
                    str(ZOO_PRESET),
                    str(seed),
                    str(args.steps),
                    f"{args.out_dir}/proxrl_s{seed}/progress.csv",
                ],
                False,
            ),
            (
                "proxrl (own fast preset)",
                [
                    py,
                    str(HERE / "_proxrl_runner.py"),
                    str(FAST_PRESET),
                    str(seed),
                    "0",
                    f"{args.out_dir}/proxrl-fast_s{seed}/progress.csv",
                ],
                False,
            ),
            (
                "SB3 2.x (zoo hyperparameters)",
                [
                    py,
                    str(HERE / "_sb3_runner.py"),
                    str(seed),
                    str(args.steps),
                    f"{args.out_dir}/sb3_s{seed}/progress.csv",
                ],
                False,
            ),
        ]
        if args.cleanrl:
            jobs += [
                (
                    "proxrl (CleanRL defaults)",
                    [
                        py,
                        str(HERE / "_proxrl_runner.py"),
                        str(ZOO_PRESET),
                        str(seed),
                        str(args.cleanrl_steps),
                        "",
                        json.dumps(CLEANRL_DEFAULTS),
                    ],
                    False,
                ),
                (
                    "CleanRL ppo.py (defaults)",
                    [
                        args.cleanrl_python,
                        args.cleanrl,
                        "--seed",
                        str(seed),
                        "--total-timesteps",
                        str(args.cleanrl_steps),
                        "--no-cuda",
                    ],
                    True,
                ),
            ]
        if seed % 2:  # alternate who goes first
            jobs.reverse()
        for name, cmd, is_cleanrl in jobs:
            r = run(cmd, env, parse_cleanrl=is_cleanrl)
            r["seed"] = seed
            contenders.setdefault(name, []).append(r)
            print(
                f"{name} seed {seed}: {fmt(r['sps'])} steps/s, 475 at {fmt(r['hit_step'])} steps / "
                f"{fmt(r['hit_seconds'], '.1f')} s, peak RSS {r['peak_rss_mib']:.0f} MiB",
                file=sys.stderr,
            )

    lines = [
        "| contender | seed | steps/s | steps to 475 | seconds to 475 (from process start) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    med = {}
    for name, runs in contenders.items():
        for r in sorted(runs, key=lambda r: r["seed"]):
            lines.append(
                f"| {name} | {r['seed']} | {fmt(r['sps'])} | {fmt(r['hit_step'])} | "
                f"{fmt(r['hit_seconds'], '.1f')} | {r['peak_rss_mib']:.0f} |"
            )
        med[name] = {k: median([r[k] for r in runs]) for k in ("sps", "hit_step", "hit_seconds", "peak_rss_mib")}
        m = med[name]
        lines.append(
            f"| **{name}** | median | **{fmt(m['sps'])}** | **{fmt(m['hit_step'])}** | "
            f"**{fmt(m['hit_seconds'], '.1f')}** | **{m['peak_rss_mib']:.0f}** |"
        )
    print("\n".join(lines))

    def ratio(a: str, b: str, key: str) -> str:
        x, y = med.get(a, {}).get(key), med.get(b, {}).get(key)
        return "—" if not x or not y else f"{x / y:.2f}"

    print()
    print(
        f"- steps/s, proxrl / SB3 (same hyperparameters): "
        f"{ratio('proxrl (zoo hyperparameters)', 'SB3 2.x (zoo hyperparameters)', 'sps')}"
    )
    print(
        f"- seconds to 475, proxrl / SB3: "
        f"{ratio('proxrl (zoo hyperparameters)', 'SB3 2.x (zoo hyperparameters)', 'hit_seconds')}"
    )
    print(
        f"- steps to 475, proxrl / SB3: "
        f"{ratio('proxrl (zoo hyperparameters)', 'SB3 2.x (zoo hyperparameters)', 'hit_step')}"
    )
    print(
        f"- seconds to 475, proxrl's own fast preset / SB3 (zoo): "
        f"{ratio('proxrl (own fast preset)', 'SB3 2.x (zoo hyperparameters)', 'hit_seconds')}"
    )
    print(
        f"- peak RSS, proxrl / SB3: "
        f"{ratio('proxrl (zoo hyperparameters)', 'SB3 2.x (zoo hyperparameters)', 'peak_rss_mib')}"
    )
    if args.cleanrl:
        print(
            f"- steps/s, proxrl / CleanRL (CleanRL's defaults): "
            f"{ratio('proxrl (CleanRL defaults)', 'CleanRL ppo.py (defaults)', 'sps')}"
        )
    print(
        "\nlearning curves: proxrl plot "
        + " ".join(f"{lab}={args.out_dir}/{lab}_s{s}" for lab in ("proxrl", "proxrl-fast", "sb3") for s in args.seeds)
        + " --x time --out benchmarks/cartpole_vs_sb3.png"
    )


if __name__ == "__main__":
    main()
