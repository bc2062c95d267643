"""GRPO's held-out accuracy gain on several seeds: the multi-seed figures of README.md and docs/grpo.md.

For each seed, a preset trains through its supervised warm-up and then ``--steps`` GRPO steps; the script prints the
held-out accuracy after the warm-up and at the end, greedy and sampled (4 samples per prompt at T = 1, the policy
GRPO optimises), as a Markdown table with the mean sampled gain. Not a timing: runs go two at a time, one thread
each. ``configs/grpo_math.yaml`` on three seeds is about 5 minutes on 2 cores; tests/test_learning.py runs one of
its seeds in CI (a learning test of ten minutes would not fit CI's budget).

    python benchmarks/grpo_learning.py [--preset grpo_math.yaml] [--seeds 0 1 2] [--steps 120] [--workers 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import platform
import re
import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def accuracy_gain(preset: str, seed: int, steps: int) -> tuple[int, float, float, float, float, float]:
    """Train ``preset`` for ``steps`` GRPO steps with one seed: (seed, greedy and sampled held-out accuracy after the
    warm-up, the same at the end, wall seconds)."""
    import torch

    from proxrl import GRPO, config

    torch.set_num_threads(1)
    overrides = {"seed": seed, "total_steps": steps, "tensorboard": False, "checkpoint_every": 0, "eval_every": 0}
    cfg = config.resolve(GRPO.config_class, CONFIGS / preset, overrides)
    start = time.perf_counter()
    held_out = GRPO(config=cfg, progress=False).learn().held_out
    return (
        seed,
        float(held_out.warmup),
        float(held_out.warmup_sampled),
        float(held_out.last),
        float(held_out.last_sampled),
        time.perf_counter() - start,
    )


def cpu() -> str:
    """The CPU's model name and its widest vector extension (Linux), else the machine type."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    name = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
    vector = "AVX-512" if " avx512f" in info else "AVX2" if " avx2" in info else "no AVX2"
    return f"{name.group(1) if name else platform.machine()}, {vector}"


def main() -> None:
    """Run the seeds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="grpo_math.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(accuracy_gain, args.preset, seed, args.steps) for seed in args.seeds]
        results = sorted(f.result() for f in futures)
    print(f"{args.preset}, {args.steps} GRPO steps, {cpu()}")
    print("| seed | greedy after warm-up → end | sampled after warm-up → end | sampled gain | wall s |")
    print("|---:|---|---|---:|---:|")
    for seed, greedy0, sampled0, greedy1, sampled1, wall in results:
        print(
            f"| {seed} | {greedy0:.3f} → {greedy1:.3f} | {sampled0:.3f} → {sampled1:.3f} | "
            f"{100 * (sampled1 - sampled0):+.1f} points | {wall:.0f} |"
        )
    gains = [sampled1 - sampled0 for _, _, sampled0, _, sampled1, _ in results]
    print(f"mean sampled gain: {100 * sum(gains) / len(gains):+.1f} points")


if __name__ == "__main__":
    main()
