"""Where the start-up and shut-down of Ray runners go (issue 35: a local cluster added ~7-8 s to every run).

Two measurements, one timed process at a time:

- ``phases``: a fresh process per repeat builds PPO on CartPole-v1 with ``runners: ray`` (8 envs, 1 or 2 runners)
  and times each phase of the runners' life: ``import ray``, ``ray.init`` of the local cluster (the watchdog's
  start inside it), the rest of the group's start (resources, placement group, actors submitted), the runners'
  construction (their processes import proxrl and build the policy: until the first ``pid()`` returns), the first
  and second rollout, and ``close()`` (runners killed, placement group removed, ``ray.shutdown``, the watchdog's
  stop).
- ``runs``: the wall time of ``proxrl train ppo --config configs/ppo_cartpole.yaml --set total_steps=60000 --set
  vectorization=sync`` as a user runs it: the local runner; 1 and 2 Ray runners on a local cluster the run starts;
  and 2 runners joining a running cluster (``--ray-address``, the cluster started once by this script, as ``ray
  start --head`` would be).

    python benchmarks/ray_startup.py                   # both, 3 repeats
    python benchmarks/ray_startup.py --repeats 1 --only phases

Ray is used on loopback only: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, ``RAY_AUTH_MODE=disabled`` and
``RAY_USAGE_STATS_ENABLED=0`` are set before ``import ray``, here and in every child process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
RUN = ["train", "ppo", "--config", "configs/ppo_cartpole.yaml", "--set", "total_steps=60000"]
RUN += ["--set", "vectorization=sync", "--quiet", "--eval-episodes", "0", "--overwrite"]


def phases(num_runners: int) -> dict[str, float]:
    """Seconds of each phase of ``num_runners`` runners' life in this (fresh) process."""
    times: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times[name] = times.get(name, 0.0) + time.perf_counter() - t

        return wrapper

    t = time.perf_counter()
    import ray

    times["import ray"] = time.perf_counter() - t
    from proxrl import PPO
    from proxrl.runners import watchdog

    ray.init, ray.shutdown = timed("ray.init", ray.init), timed("ray.shutdown", ray.shutdown)
    watchdog.start, watchdog.stop = timed("watchdog start", watchdog.start), timed("watchdog stop", watchdog.stop)
    agent = PPO("CartPole-v1", runners="ray", num_runners=num_runners, num_envs=8, num_steps=32, progress=False)
    steps = [
        ("group start (ray.init included)", lambda: agent.rollout()),
        ("runners constructed", lambda: agent.rollout().pids()),
        ("first rollout", lambda: agent.rollout().collect()),
        ("second rollout", lambda: agent.rollout().collect()),
        ("close (ray.shutdown included)", agent.close),
    ]
    for name, step in steps:
        t = time.perf_counter()
        step()
        times[name] = time.perf_counter() - t
    return times


def _median_phases(num_runners: int, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(num_runners)],
            cwd=ROOT,
            env=dict(os.environ, **RAY_ENV),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _wall(args: list[str], run_dir: Path) -> float:
    t = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "proxrl"), *RUN, *args, "--run-dir", str(run_dir)],
        cwd=ROOT,
        env=dict(os.environ, **RAY_ENV),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t


def runs(repeats: int, run_dir: Path) -> dict[str, float]:
    """Median wall seconds of the 60k-step CartPole run: local, 1 and 2 runners, 2 runners on a running cluster."""
    contenders = {"local": [], "ray, 1 runner": ["--runners", "ray", "--num-runners", "1"]}
    contenders["ray, 2 runners"] = ["--runners", "ray", "--num-runners", "2"]
    walls: dict[str, list[float]] = {name: [] for name in [*contenders, "ray, 2 runners, --ray-address"]}
    for _ in range(repeats):
        for name, args in contenders.items():
            walls[name].append(_wall(args, run_dir))
    os.environ.update(RAY_ENV)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # the running cluster (as ray start would)
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address
        for _ in range(repeats):
            args = ["--runners", "ray", "--num-runners", "2", "--ray-address", address]
            walls["ray, 2 runners, --ray-address"].append(_wall(args, run_dir))
    finally:
        ray.shutdown()
    return {name: statistics.median(w) for name, w in walls.items()}


def main() -> None:
    """Print the phases (1 and 2 runners) and the runs' wall times as Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("phases", "runs"))
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/proxrl_ray_startup"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(phases(args.child)))
        return
    if args.only != "runs":
        one, two = _median_phases(1, args.repeats), _median_phases(2, args.repeats)
        print(f"| phase (median of {args.repeats}, s) | 1 runner | 2 runners |\n|---|---|---|")
        for name in one:
            print(f"| {name} | {one[name]:.2f} | {two[name]:.2f} |")
    if args.only != "phases":
        walls = runs(args.repeats, args.run_dir)
        print(f"\n| 60k CartPole steps (median of {args.repeats}) | wall s | over local |\n|---|---|---|")
        for name, wall in walls.items():
            print(f"| {name} | {wall:.1f} | {wall - walls['local']:+.1f} |")


if __name__ == "__main__":
    main()
