"""How PPO's env steps/s scale with Ray runners (``runners: ray``) on an env whose step is expensive, beside the
local runner, on this machine; and a two-node Ray cluster on one host that proves the ``ray_address`` path.

The env is ``proxrl_bench/CostlyCartPole-v0`` (``benchmarks/_costly_env.py``): CartPole whose step burns a fixed
``--cost-ms`` of CPU. Contenders: the local runner (8 envs, ``vectorization: sync``) and Ray with 1, 2 and 4
runners (8 envs in all: 8, 4 and 2 per runner); PPO with one epoch per update, so stepping dominates. Every run
trains ``--iterations`` × 8 × 128 env steps; its first iteration is warm-up and left out. Each contender × seed is
a fresh process; the order alternates between seeds; medians over seeds. The same grid runs again at
``cost_ms = 0`` to isolate Ray's own overhead per iteration. One timed process at a time.

    python benchmarks/ray_scaling.py                          # 3 seeds, cost_ms 1.0 and 0, 8 iterations
    python benchmarks/ray_scaling.py --seeds 0 --iterations 2 # a smoke test (seconds per run)
    python benchmarks/ray_scaling.py --multinode              # head + worker node (`ray start`) on this host

``--multinode`` runs as root inside private network, PID and mount namespaces (``unshare``: only a loopback
interface, private ``/tmp`` and ``/dev/shm``): ``ray start --head`` and ``ray start --address`` with 1 CPU each,
then the local runner and PPO with ``ray_address="127.0.0.1:6389"`` and 2 runners, printing steps/s and each
runner's Ray node. ``ray stop --force`` ends the cluster (it sees only the namespace's processes); the kernel kills
whatever is left when the namespace's first process exits.

Ray is used on loopback only: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (single node), ``RAY_AUTH_MODE=disabled``
and ``RAY_USAGE_STATS_ENABLED=0`` are set before ``import ray``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RAY_CLI = str(Path(sys.executable).parent / "ray")
ENV = "_costly_env:proxrl_bench/CostlyCartPole-v0"
NUM_ENVS, NUM_STEPS = 8, 128
BATCH = NUM_ENVS * NUM_STEPS
CONTENDERS = {"local": 0, "ray-1": 1, "ray-2": 2, "ray-4": 4}  # name: Ray runners (0: the local runner)
HEAD_PORT = 6389
MULTINODE_NAME = "ray-2 (2 nodes)"
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
# extrapolation: one machine's network between the learner and a runner (assumed, not measured here)
RTT_S, BANDWIDTH_BPS = 0.5e-3, 1e9 / 8  # 0.5 ms round trip, 1 Gbit/s


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def cpu_model() -> str:
    """The CPU's model name (Linux), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def cpus_per_runner(runners: int, available: int) -> float:
    """One CPU per runner while they fit, else an equal share (4 runners on 2 cores: 0.5 each)."""
    return min(1.0, available / runners)


# --- one measured run (a child process) ---------------------------------------------------------------------------


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Train PPO as ``spec`` says; return the steady-state timings (first iteration left out)."""
    runners, address = spec["runners"], spec.get("ray_address")
    os.environ.update(RAY_ENV)
    if address is None:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # one node bound to 127.0.0.1 (read at import)
    import numpy as np
    import torch

    from proxrl import PPO
    from proxrl.runners.runner import EnvRunner, Sync

    torch.set_num_threads(1)
    ray: Any = None
    if runners and address is None:  # our own one-node cluster, sized to this machine; proxrl uses it as it is
        import ray

        ray.init(num_cpus=spec["cores"], include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    extra = {}
    if runners:
        extra = dict(runners="ray", num_runners=runners, cpus_per_runner=spec["cpus_per_runner"], ray_address=address)
    agent = PPO(
        ENV,
        env_kwargs={"cost_ms": spec["cost_ms"]},
        num_envs=NUM_ENVS,
        num_steps=NUM_STEPS,
        num_epochs=1,
        num_minibatches=4,
        vectorization="sync",
        seed=spec["seed"],
        torch_threads=1,
        tensorboard=False,
        progress=False,
        **extra,
    )
    rows: list[dict[str, Any]] = []
    nodes: list[str | None] = []
    alive_nodes = 0
    try:
        agent.learn(spec["iterations"] * BATCH, callback=lambda _agent, row: rows.append(row))
        if runners:
            import ray as ray_module

            nodes = agent.envs.rollout.nodes()
            alive_nodes = sum(1 for n in ray_module.nodes() if n["Alive"])
    finally:
        agent.close()
        if ray is not None and ray.is_initialized():
            ray.shutdown()
    steady = rows[1:]
    samples = sum(r["samples"] for r in steady)
    collect = sum(r["collect_seconds"] for r in steady)
    update = sum(r["update_seconds"] for r in steady)
    loop = rows[-1]["time"] - rows[0]["time"]  # the steady iterations, end to end (logging included)
    # bytes on the wire per iteration: the weights once, and one fragment per runner (measured on a cost-free copy)
    weights = agent.flats["policy"].param.detach().cpu().numpy()
    probe_cfg = dataclasses.replace(agent.config, env_kwargs={"cost_ms": 0.0}, num_runners=max(runners, 1))
    probe = EnvRunner(probe_cfg, 0)
    fragment = probe.sample(weights, Sync(1, np.random.default_rng(0).bit_generator.state, 0))
    probe.close()
    return {
        "iterations": len(steady),
        "samples": samples,
        "collect_seconds": collect,
        "update_seconds": update,
        "loop_seconds": loop,
        "collect_sps": samples / collect,
        "loop_sps": samples / loop,
        "collect_per_iter": collect / len(steady),
        "update_per_iter": update / len(steady),
        "runners_in_rows": [r.get("runners") for r in rows],
        "nodes": nodes,
        "alive_nodes": alive_nodes,
        "weights_bytes": weights.nbytes,
        "fragment_bytes": len(pickle.dumps(fragment)),
    }


def run_child(spec: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """One measured run in a fresh process (its own process group, killed whole on timeout or exit)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"{spec} took longer than {timeout:g} s (killed)") from None
    finally:
        try:  # anything the run started in its group (a Ray it left behind)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.returncode != 0:
        raise RuntimeError(f"{spec} failed ({proc.returncode}):\n{err[-3000:]}")
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[7:])


def child_env() -> dict[str, str]:
    """The children's (and Ray workers') environment: benchmarks/ and the repo importable."""
    path = [str(HERE), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), **RAY_ENV)


# --- the single-node grid -------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def summarize(results: dict[tuple[float, str], list[dict[str, Any]]]) -> dict[tuple[float, str], dict[str, float]]:
    """Medians over seeds per (cost_ms, contender)."""
    keys = ("collect_sps", "loop_sps", "collect_per_iter", "update_per_iter", "weights_bytes", "fragment_bytes")
    return {k: {key: median([r[key] for r in runs]) for key in keys} for k, runs in results.items()}


def table(med: dict[tuple[float, str], dict[str, float]], names: list[str], costs: list[float]) -> list[str]:
    """The Markdown table: per cost and contender, steps/s and the collect time's difference to the local runner."""
    lines = [
        "| cost_ms | contender | envs/runner | CPUs/runner | collect steps/s | loop steps/s | loop × local "
        "| collect ms/iter | update ms/iter | Δ collect vs local, ms/iter | Δ per env step, µs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cost in costs:
        base = med.get((cost, "local"))
        for name in names:
            m = med.get((cost, name))
            if m is None:
                continue
            k = CONTENDERS.get(name, 2)
            per_runner = str(NUM_ENVS // k) if k else f"{NUM_ENVS} (sync)"
            share = f"{cpus_per_runner(k, cores()):g}" if k else "—"
            if base is None or not k:
                ratio, delta, per_step = ("1.00" if base else "—"), "—", "—"
            else:
                d = m["collect_per_iter"] - base["collect_per_iter"]
                ratio, delta, per_step = (
                    f"{m['loop_sps'] / base['loop_sps']:.2f}",
                    f"{d * 1e3:+.1f}",
                    f"{d / BATCH * 1e6:+.1f}",
                )
            lines.append(
                f"| {cost:g} | {name} | {per_runner} | {share} | {m['collect_sps']:,.0f} | {m['loop_sps']:,.0f} | "
                f"{ratio} | {m['collect_per_iter'] * 1e3:.1f} | {m['update_per_iter'] * 1e3:.1f} | {delta} | "
                f"{per_step} |"
            )
    return lines


def extrapolate(med: dict[tuple[float, str], dict[str, float]], cost: float, machine_cores: int) -> list[str]:
    """N machines of ``machine_cores`` cores, on paper, from this run's per-step cost and per-iteration overhead."""
    local, ray1 = med.get((cost, "local")), med.get((cost, "ray-1"))
    local0, ray1_0 = med.get((0.0, "local")), med.get((0.0, "ray-1"))
    if not (local and ray1 and local0 and ray1_0):
        return ["(extrapolation needs local and ray-1 at both cost_ms values)"]
    t_step = local["collect_per_iter"] / BATCH  # CPU seconds per env step on one core: env + acting
    overhead = max(ray1_0["collect_per_iter"] - local0["collect_per_iter"], 0.0)  # Ray's own cost per iteration
    u_per_sample = local["update_per_iter"] / BATCH  # the learner's update, per sample
    frag = ray1["fragment_bytes"] / NUM_ENVS  # bytes per env column of T steps
    m_envs = NUM_ENVS  # envs per runner, held fixed as runners are added (the batch grows with them)
    lines = [
        f"Measured here (medians, cost_ms={cost:g}): one env step costs t = {t_step * 1e6:,.0f} µs of one core "
        f"(the local runner's collect time per step: env + acting); Ray's overhead per iteration o = "
        f"{overhead * 1e3:.1f} ms (ray-1 minus local collect time at cost_ms=0: weights put, call, fragment pickled "
        f"and returned, batch assembled; {overhead / BATCH * 1e6:.1f} µs per env step of a {BATCH}-step batch); "
        f"the learner's update u = {u_per_sample * 1e6:.1f} µs per sample (1 epoch); a runner's fragment is "
        f"{frag * m_envs / 1e3:.0f} kB for {m_envs} envs × {NUM_STEPS} steps, the weights "
        f"{ray1['weights_bytes'] / 1e3:.0f} kB.",
        "",
        f"On paper, for N machines of c = {machine_cores} cores, R = N·c − 1 runners of one core each (one core "
        f"stays with the learner), M = {m_envs} envs per runner, T = {NUM_STEPS}, sync PPO (the learner waits for "
        "every fragment, the runners wait for the update):",
        "",
        "    steps/s(R) ≈ R·M·T / (M·T·t + o + net + R·M·T·u),   net = RTT + (weights + fragment) / bandwidth",
        "",
        f"assuming: every core steps as fast as this one; o does not grow with R (optimistic: the learner unpickles "
        f"R fragments one after another); net with RTT {RTT_S * 1e3:g} ms and {BANDWIDTH_BPS * 8 / 1e9:g} Gbit/s per "
        "machine, fragments arriving in parallel; the update keeps its per-sample cost as the batch grows (one "
        "learner core: a larger batch is a longer update). As R grows, steps/s tends to 1/u "
        f"≈ {1 / u_per_sample:,.0f}: the learner, not the envs, is the ceiling (Amdahl); more epochs lower it.",
        "",
        "| machines N | runners R | batch R·M·T | steps/s (model) | × one core (local) |",
        "|---|---|---|---|---|",
    ]
    net = RTT_S + (ray1["weights_bytes"] + frag * m_envs) / BANDWIDTH_BPS
    one_core = BATCH / (local["collect_per_iter"] + local["update_per_iter"])
    for n in (1, 2, 4, 8, 16, 32):
        r = max(n * machine_cores - 1, 1)
        batch = r * m_envs * NUM_STEPS
        sps = batch / (m_envs * NUM_STEPS * t_step + overhead + (net if n > 1 else 0.0) + batch * u_per_sample)
        lines.append(f"| {n} | {r} | {batch:,} | {sps:,.0f} | {sps / one_core:.1f} |")
    lines += [
        "",
        f"On this machine ({cores()} cores, shared by the learner and the runners) the ceiling is about "
        f"{cores()}× the one-core rate at best, less what the learner and Ray's processes take.",
    ]
    return lines


def grid(args: argparse.Namespace) -> None:
    """Every contender × seed × cost, one process at a time; the table and the extrapolation."""
    env = child_env()
    names = [n for n in CONTENDERS if n in args.contenders]
    costs = [args.cost_ms] + ([0.0] if args.cost_ms and not args.no_zero_cost else [])
    results: dict[tuple[float, str], list[dict[str, Any]]] = {}
    n = cores()
    for c, cost in enumerate(costs):
        for i, seed in enumerate(args.seeds):
            order = names if (i + c) % 2 == 0 else names[::-1]  # alternate who goes first
            for name in order:
                k = CONTENDERS[name]
                share = cpus_per_runner(k, n) if k else 1.0
                spec = dict(
                    runners=k, cores=n, cpus_per_runner=share, cost_ms=cost, seed=seed, iterations=args.iterations
                )
                r = run_child(spec, env, args.run_timeout)
                results.setdefault((cost, name), []).append(r)
                print(
                    f"cost {cost:g} ms, {name}, seed {seed}: {r['collect_sps']:,.0f} collect steps/s, "
                    f"{r['loop_sps']:,.0f} loop steps/s, runners per row {r['runners_in_rows']}",
                    file=sys.stderr,
                    flush=True,
                )
    med = summarize(results)
    print(header(args))
    print("\n".join(table(med, names, costs)))
    print()
    if args.cost_ms:
        print("\n".join(extrapolate(med, args.cost_ms, args.machine_cores)))


def header(args: argparse.Namespace) -> str:
    """The setup, stated: machine, threads, what each run does."""
    argv = [a for a in sys.argv[1:] if a != "--inside-namespace"]
    command = shlex.join([os.path.relpath(sys.executable, ROOT), os.path.relpath(__file__, ROOT), *argv])
    return (
        f"`{command}`\n\n"
        f"{cpu_model()}, {cores()} cores (the learner, the Ray runners and Ray's own "
        f"processes share them); torch threads: 1 in the learner and 1 in each runner; Python "
        f"{platform.python_version()}. PPO on {ENV.split(':')[1]}, {NUM_ENVS} envs × {NUM_STEPS} steps per "
        f"iteration, 1 epoch of 4 minibatches, vectorization sync; {args.iterations} iterations per run, the first "
        f"left out (warm-up); seeds {' '.join(map(str, args.seeds))}, each contender × seed a fresh process, order "
        f"alternating; medians. CPUs per runner: 1 while runners ≤ cores, else cores / runners. 'collect': "
        "collect_seconds of the log rows; 'loop': wall time of the steady iterations (collect + update + logging).\n"
    )


# --- two nodes on one host -----------------------------------------------------------------------------------------


def multinode(args: argparse.Namespace) -> int:
    """Re-run this script inside private network, PID and mount namespaces (loopback only); see the docstring."""
    if os.geteuid() != 0:
        print("--multinode needs root (unshare of the network, PID and mount namespaces)", file=sys.stderr)
        return 2
    inner = [sys.executable, str(Path(__file__).resolve()), "--inside-namespace", *sys.argv[1:]]
    setup = (
        "ip link set lo up && mount -t tmpfs -o size=2g tmpfs /tmp && mount -t tmpfs -o size=2g tmpfs /dev/shm && "
        '"$@"'  # bash stays the namespace's first process (it reaps Ray's orphans); its exit kills the rest
    )
    cmd = ["unshare", "--net", "--pid", "--mount", "--fork", "--mount-proc", "--kill-child", "bash", "-c", setup, "-"]
    try:
        return subprocess.run(cmd + inner, cwd=ROOT, timeout=args.multinode_timeout).returncode
    except subprocess.TimeoutExpired:  # unshare was killed; --kill-child took the namespace with it
        print(f"--multinode took longer than {args.multinode_timeout:g} s: stopped", file=sys.stderr)
        return 1


def ray_cli(*argv: str, env: dict[str, str], timeout: float = 120.0) -> None:
    """``ray ARGV`` with a time limit; raises on failure."""
    proc = subprocess.run([RAY_CLI, *argv], env=env, timeout=timeout, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ray {' '.join(argv)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def inside_namespace(args: argparse.Namespace) -> None:
    """Head and worker node (1 CPU each), the local runner and 2 runners joined by address; always ``ray stop``."""
    env = child_env()
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # with it, `ray start --address` refuses to join
    address = f"127.0.0.1:{HEAD_PORT}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats", "--object-store-memory=200000000"]
    results: dict[tuple[float, str], list[dict[str, Any]]] = {}
    try:
        ray_cli("start", "--head", f"--port={HEAD_PORT}", "--include-dashboard=false", *common, env=env)
        ray_cli("start", f"--address={address}", *common, env=env)
        for i, seed in enumerate(args.seeds):
            order = ["local", MULTINODE_NAME] if i % 2 == 0 else [MULTINODE_NAME, "local"]
            for name in order:
                spec = dict(runners=0, cost_ms=args.cost_ms, seed=seed, iterations=args.iterations)
                if name != "local":
                    spec.update(runners=2, cpus_per_runner=1.0, ray_address=address)
                r = run_child(spec, env, args.run_timeout)
                results.setdefault((args.cost_ms, name), []).append(r)
                print(f"{name}, seed {seed}: {r['loop_sps']:,.0f} loop steps/s", file=sys.stderr, flush=True)
    finally:
        try:
            ray_cli("stop", "--force", env=env, timeout=60.0)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"ray stop: {e} (the namespace's end kills what is left)", file=sys.stderr)
    med = summarize(results)
    print(header(args))
    print(
        f"Two Ray nodes on this host in a private network namespace: `ray start --head --port={HEAD_PORT}` and "
        f"`ray start --address={address}`, {' '.join(common[:2])} each; the driver joins with ray_address="
        f"'{address}', 2 runners of 1 CPU (SPREAD: one per node).\n"
    )
    print("\n".join(table(med, ["local", MULTINODE_NAME], [args.cost_ms])))
    for r in results.get((args.cost_ms, MULTINODE_NAME), []):
        distinct = len(set(r["nodes"]))
        print(f"\n- runners' nodes: {r['nodes']} ({distinct} distinct of {r['alive_nodes']} alive nodes)")
    print()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=8, help="iterations per run (the first is warm-up)")
    p.add_argument("--cost-ms", type=float, default=1.0, help="CPU milliseconds burnt per env step")
    p.add_argument("--no-zero-cost", action="store_true", help="skip the cost_ms=0 grid (Ray's pure overhead)")
    p.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    p.add_argument("--machine-cores", type=int, default=8, help="cores per machine in the extrapolation")
    p.add_argument("--run-timeout", type=float, default=600.0, help="seconds one run may take before it is killed")
    p.add_argument("--multinode", action="store_true", help="two Ray nodes on this host (root; see above)")
    p.add_argument("--multinode-timeout", type=float, default=1800.0)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--inside-namespace", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.iterations < 2:
        p.error("--iterations must be at least 2 (the first is warm-up)")
    if args.child:
        result = measure(json.loads(args.child))
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if args.inside_namespace:
        inside_namespace(args)
        return 0
    if args.multinode:
        return multinode(args)
    start = time.perf_counter()
    grid(args)
    print(f"\n(total {time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
