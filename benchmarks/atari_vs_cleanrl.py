"""PPO on Atari, side by side: proxrl (``configs/ppo_atari.yaml``) vs CleanRL's ``ppo_atari.py`` vs SB3's PPO with
``CnnPolicy`` (and with ``--envpool`` / ``--cleanrl-envpool`` proxrl with ``vectorization=envpool`` and CleanRL's
``ppo_atari_envpool.py``), all with CleanRL's hyperparameters (8 envs × 128 steps, 4 minibatches × 4 epochs,
lr 2.5e-4 annealed, clip 0.1, clipped value loss, entropy 0.01, value 0.5, max grad norm 0.5, γ 0.99, λ 0.95)
and the standard preprocessing (up to 30 no-ops, frame skip 4 with max-pooling, 84×84 grayscale, 4 stacked
frames, episodic life, sign-clipped rewards, FIRE on reset), each library with its own wrappers.

Measures, per run: env steps/s of the training loop (each library's own clock: proxrl's progress.csv ``sps``,
CleanRL's last ``SPS:`` line, SB3 timed around ``learn``), wall seconds from process start to exit, and peak RSS
(``ru_maxrss`` of the process from ``wait4``: all three step their 8 envs in-process, sync vector envs, so the tree
is one process). Every run is a fresh process; the contenders alternate (proxrl, CleanRL, SB3, ...; the first one
rotates with the seed); medians over the seeds, ratios proxrl / each peer. Every process gets the same torch
intra-op thread count (``--threads``: proxrl ``--set torch_threads``, SB3 ``torch.set_num_threads``, CleanRL
``OMP_NUM_THREADS``, which all processes also get).

    python benchmarks/atari_vs_cleanrl.py --cleanrl PATH/TO/cleanrl/cleanrl/ppo_atari.py \\
        [--cleanrl-python .venv-cleanrl/bin/python] [--games Breakout Pong] [--steps 100000] [--seeds 3] \\
        [--threads 2] [--markdown FILE]

All three step the same emulator settings: ``<Game>NoFrameskip-v4`` (frameskip 1, no sticky actions, full
episodes up to 108k frames), which is CleanRL's default and what SB3's ``AtariWrapper`` expects; proxrl, which
takes ``ALE/`` ids, gets ``ALE/<Game>-v5`` with ``repeat_action_probability=0`` (its wrappers set frameskip 1).

CleanRL's file is run unchanged, from a CleanRL checkout (its ``cleanrl_utils`` must sit beside ``cleanrl/``). It
needs gymnasium 0.29 (``GrayScaleObservation``, ``FrameStack``, ``final_info``), so a separate interpreter:
``ATARI=1 bash benchmarks/setup_cleanrl_venv.sh`` (ale-py at proxrl's version, OpenCV, and for
``ppo_atari_envpool.py`` EnvPool 0.8.4 with gym 0.23.1). Its env id goes through ``_atari_peers``
(``--env-id _atari_peers:BreakoutNoFrameskip-v4``), which registers ale-py's v4 ids under gymnasium 0.29. Without
``--cleanrl`` or a working interpreter, CleanRL is skipped with the reason printed. The EnvPool contenders step
EnvPool's ``<Game>-v5`` with its own preprocessing (the same steps; sticky actions off in both).

    python benchmarks/atari_vs_cleanrl.py --cleanrl CLEANRL/cleanrl/ppo_atari.py \\
        --cleanrl-envpool CLEANRL/cleanrl/ppo_atari_envpool.py --envpool --log runs.jsonl [--steps 20480]

``--log`` appends each run's result as it finishes, so a long comparison stopped midway keeps what it measured.
``--contenders`` picks exactly which run, among them proxrl with ``cnn_precision=bfloat16`` (its Nature CNN under
bf16 autocast, the rest float32; ``proxrl-bf16``, ``proxrl-bf16-envpool``), which the peers do not offer:

    python benchmarks/atari_vs_cleanrl.py --cleanrl CLEANRL/cleanrl/ppo_atari.py \
        --cleanrl-envpool CLEANRL/cleanrl/ppo_atari_envpool.py --steps 102400 --log runs.jsonl \
        --contenders proxrl-bf16-envpool proxrl-envpool cleanrl-envpool sb3
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PRESET = ROOT / "configs" / "ppo_atari.yaml"
PROXRL, CLEANRL, SB3 = "proxrl", "CleanRL ppo_atari.py", "SB3 PPO CnnPolicy"
PROXRL_POOL, CLEANRL_POOL = "proxrl (EnvPool)", "CleanRL ppo_atari_envpool.py"
PROXRL_BF16, PROXRL_BF16_POOL = "proxrl bf16", "proxrl bf16 (EnvPool)"
PEERS = (CLEANRL, CLEANRL_POOL, SB3)
OURS = (PROXRL, PROXRL_POOL, PROXRL_BF16, PROXRL_BF16_POOL)
# --contenders keys; proxrl's get vectorization=envpool and/or cnn_precision=bfloat16 on top of the preset
CONTENDERS = {
    "proxrl": (PROXRL, []),
    "proxrl-envpool": (PROXRL_POOL, ["vectorization=envpool"]),
    "proxrl-bf16": (PROXRL_BF16, ["cnn_precision=bfloat16"]),
    "proxrl-bf16-envpool": (PROXRL_BF16_POOL, ["cnn_precision=bfloat16", "vectorization=envpool"]),
    "cleanrl": (CLEANRL, None),
    "cleanrl-envpool": (CLEANRL_POOL, None),
    "sb3": (SB3, None),
}
LR = 2.5e-4
# configs/ppo_atari.yaml (= CleanRL's ppo_atari.py defaults) in SB3's terms; clip_range_vf is the clipped value loss
SB3_KWARGS: dict[str, Any] = {
    "n_steps": 128,
    "batch_size": 8 * 128 // 4,
    "n_epochs": 4,
    "clip_range": 0.1,
    "clip_range_vf": 0.1,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "gamma": 0.99,
    "gae_lambda": 0.95,
}
CLEANRL_PROBE = (
    "import gymnasium, tyro, torch, cv2, ale_py, cleanrl_utils.atari_wrappers, _atari_peers\n"
    "assert gymnasium.__version__.startswith('0.'), f'gymnasium {gymnasium.__version__}: ppo_atari.py needs 0.29'"
)


def run_sb3(game: str, seed: int, steps: int, threads: int) -> None:
    """One SB3 run (``--run-one sb3``); prints a RESULT line."""
    import ale_py
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    torch.set_num_threads(threads)
    env = VecFrameStack(make_atari_env(f"{game}NoFrameskip-v4", n_envs=8, seed=seed), n_stack=4)
    model = PPO("CnnPolicy", env, learning_rate=lambda left: left * LR, seed=seed, device="cpu", **SB3_KWARGS)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - start
    result = {"steps": model.num_timesteps, "sps": model.num_timesteps / seconds, "threads": torch.get_num_threads()}
    print("RESULT " + json.dumps(result), flush=True)


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run one contender in ``cwd``; parse its RESULT / ``SPS:`` / thread lines; add wall seconds and peak RSS."""
    start = time.time()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=cwd)
        result: dict[str, Any] = {}
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("RESULT "):
                result.update(json.loads(line[7:]))
            elif m := re.match(r"SPS: (\d+)", line):  # CleanRL: global_step / seconds since reset, the last covers all
                result["sps"] = int(m.group(1))
            elif m := re.match(r"ATARI_PEERS torch_threads=(\d+) ale_py=(\S+)", line):  # from _atari_peers
                result["threads"], result["ale_py"] = int(m.group(1)), m.group(2)
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.read()[-3000:]}")
    result["wall_seconds"] = time.time() - start
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def cleanrl_problem(args: argparse.Namespace, env: dict[str, str]) -> str | None:
    """Why CleanRL cannot run here, or None."""
    if not args.cleanrl:
        return "no --cleanrl PATH/TO/cleanrl/ppo_atari.py given"
    if not Path(args.cleanrl).is_file() or not (Path(args.cleanrl).resolve().parent.parent / "cleanrl_utils").is_dir():
        return f"{args.cleanrl} is not ppo_atari.py in a CleanRL checkout (with cleanrl_utils/ beside cleanrl/)"
    if not shutil.which(args.cleanrl_python):
        return f"no interpreter {args.cleanrl_python} (see this script's docstring)"
    probe = subprocess.run([args.cleanrl_python, "-c", CLEANRL_PROBE], env=env, capture_output=True, text=True)
    return None if probe.returncode == 0 else f"{args.cleanrl_python} cannot run it: {probe.stderr.strip()[-300:]}"


def report(args: argparse.Namespace, results: dict[tuple[str, str], list[dict[str, Any]]], skip: str | None) -> str:
    """The Markdown block: settings, one row per run, medians, ratios proxrl / each peer."""
    cleanrl_ale = next((r.get("ale_py") for (_, name), runs in results.items() if name == CLEANRL for r in runs), "?")
    versions = ", ".join(f"{m} {metadata.version(m)}" for m in ("torch", "gymnasium", "ale-py", "stable_baselines3"))
    lines = [
        f"### PPO on Atari: proxrl vs CleanRL ppo_atari.py vs SB3 ({datetime.date.today()})",
        "",
        f"{args.steps:,} steps per run, seeds 0..{args.seeds - 1}, {args.threads} torch threads in every process, "
        f"{os.cpu_count()} CPUs; {versions}"
        + (f"; CleanRL skipped: {skip}" if skip else f"; CleanRL: {args.cleanrl_python}, ale-py {cleanrl_ale}")
        + ".",
        "",
        "| game | contender | seed | steps | steps/s | wall s | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    med: dict[tuple[str, str], dict[str, float]] = {}
    for (game, name), runs in results.items():
        for r in runs:
            lines.append(
                f"| {game} | {name} | {r['seed']} | {r['steps']:,} | {r['sps']:,.0f} | {r['wall_seconds']:.1f} | "
                f"{r['peak_rss_mib']:.0f} |"
            )
        m = med[game, name] = {
            k: statistics.median([r[k] for r in runs]) for k in ("sps", "wall_seconds", "peak_rss_mib")
        }
        lines.append(
            f"| **{game}** | **{name}** | median | | **{m['sps']:,.0f}** | **{m['wall_seconds']:.1f}** | "
            f"**{m['peak_rss_mib']:.0f}** |"
        )
    lines.append("")
    for game in args.games:
        for ours in OURS:
            peers = [peer for peer in PEERS if (game, ours) in med and (game, peer) in med]
            for peer in peers:
                a, b = med[game, ours], med[game, peer]
                ratios = {k: a[k] / b[k] for k in a}
                lines.append(
                    f"- {game}, {ours} / {peer}: steps/s {ratios['sps']:.2f}, wall {ratios['wall_seconds']:.2f}, "
                    f"peak RSS {ratios['peak_rss_mib']:.2f}"
                )
            if peers:
                fastest = max(peers, key=lambda peer: med[game, peer]["sps"])
                lines.append(
                    f"- {game}, {ours} / the fastest peer ({fastest}): steps/s "
                    f"{med[game, ours]['sps'] / med[game, fastest]['sps']:.2f}"
                )
    return "\n".join(lines)


def interpreter(path: str) -> str:
    """A Python interpreter given as a path, made absolute: the runs start in scratch folders of their own. Not
    resolved: a virtual environment's python is a symlink to the base interpreter, which would lose the env."""
    return str(Path(path).absolute()) if os.sep in path else path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", nargs="+", default=["Breakout", "Pong"])
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads, the same for every library")
    p.add_argument("--cleanrl", help="path to CleanRL's cleanrl/ppo_atari.py (not shipped with proxrl)")
    p.add_argument("--cleanrl-python", type=interpreter, default=str(ROOT / ".venv-cleanrl" / "bin" / "python"))
    p.add_argument(
        "--cleanrl-envpool",
        help="path to CleanRL's cleanrl/ppo_atari_envpool.py (its interpreter needs envpool 0.8.4 and gym 0.23.1)",
    )
    p.add_argument("--envpool", action="store_true", help="also run proxrl with vectorization=envpool")
    p.add_argument(
        "--contenders",
        nargs="+",
        choices=list(CONTENDERS),
        help="run exactly these (default: proxrl, cleanrl and sb3, plus what --envpool and --cleanrl-envpool add); "
        "the cleanrl ones need --cleanrl / --cleanrl-envpool",
    )
    p.add_argument("--markdown", help="append the result block to this file")
    p.add_argument("--log", help="append each run's result to this JSON-lines file as it finishes")
    p.add_argument("--run-one", choices=["sb3"], help=argparse.SUPPRESS)
    p.add_argument("--game", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.run_one == "sb3":
        return run_sb3(args.game, args.seed, args.steps, args.threads)

    threads = str(args.threads)
    base = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    cleanrl_env = dict(
        base, PYTHONPATH=os.pathsep.join([str(Path(args.cleanrl or ".").resolve().parent.parent), str(HERE)])
    )
    chosen = args.contenders or [
        "proxrl",
        "cleanrl",
        "sb3",
        *(["proxrl-envpool"] if args.envpool else []),
        *(["cleanrl-envpool"] if args.cleanrl_envpool else []),
    ]
    if "cleanrl-envpool" in chosen and not args.cleanrl_envpool:
        p.error("the cleanrl-envpool contender needs --cleanrl-envpool PATH/TO/cleanrl/ppo_atari_envpool.py")
    skip = cleanrl_problem(args, cleanrl_env)
    if skip:
        print(f"CleanRL skipped: {skip}", file=sys.stderr)
    scratch = Path(tempfile.mkdtemp(prefix="atari_bench_"))
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        for seed in range(args.seeds):
            for game in args.games:
                work = scratch / f"{game}_s{seed}"
                proxrl_cmd = [
                    *(sys.executable, "-m", "proxrl.cli", "train", "ppo", "--config", str(PRESET)),
                    *("--env", f"ALE/{game}-v5", "--env-kwargs", "repeat_action_probability=0.0", "--seed", str(seed)),
                    *("--total-steps", str(args.steps), "--set", f"torch_threads={threads}", "--quiet"),
                    *("--eval-episodes", "0", "--run-dir", str(work / "proxrl")),
                ]
                sb3_cmd = [sys.executable, __file__, "--run-one", "sb3", "--game", game, "--seed", str(seed)]
                sb3_cmd += ["--steps", str(args.steps), "--threads", threads]
                cleanrl_cmd = [args.cleanrl_python, str(Path(args.cleanrl or ".").resolve())]
                cleanrl_cmd += ["--env-id", f"_atari_peers:{game}NoFrameskip-v4", "--seed", str(seed)]
                cleanrl_cmd += ["--total-timesteps", str(args.steps), "--no-cuda"]
                pool_cmd = [args.cleanrl_python, str(Path(args.cleanrl_envpool or ".").resolve())]
                pool_cmd += ["--env-id", f"{game}-v5", "--seed", str(seed)]
                pool_cmd += ["--total-timesteps", str(args.steps), "--no-cuda"]
                peer_jobs = {CLEANRL: (cleanrl_cmd, cleanrl_env), CLEANRL_POOL: (pool_cmd, base), SB3: (sb3_cmd, base)}
                jobs = []
                for key in chosen:  # EnvPool's own preprocessing; its sticky actions off, as everywhere here
                    name, sets = CONTENDERS[key]
                    if sets is None:
                        jobs.append((name, *peer_jobs[name]))
                    else:
                        jobs.append((name, [*proxrl_cmd, *(a for s in sets for a in ("--set", s))], base))
                jobs = [j for j in jobs if not (skip and j[0] in (CLEANRL, CLEANRL_POOL))]
                k = seed % len(jobs)
                for name, cmd, env in jobs[k:] + jobs[:k]:
                    work.mkdir(parents=True, exist_ok=True)  # cwd: CleanRL writes its runs/ here
                    r = run(cmd, env, work)
                    if name in OURS:
                        with open(work / "proxrl" / "progress.csv") as f:
                            last = list(csv.DictReader(f))[-1]
                        r.update(steps=int(float(last["global_step"])), sps=float(last["sps"]), threads=args.threads)
                        shutil.rmtree(work / "proxrl")
                    r.setdefault("steps", args.steps // 1024 * 1024)  # CleanRL: whole iterations of 8 × 128
                    r["seed"] = seed
                    results.setdefault((game, name), []).append(r)
                    if args.log:
                        with open(args.log, "a") as f:
                            f.write(json.dumps({"game": game, "contender": name, **r}) + "\n")
                    print(
                        f"{game} {name} seed {seed}: {r['sps']:,.0f} steps/s, {r['wall_seconds']:.1f} s wall, "
                        f"peak RSS {r['peak_rss_mib']:.0f} MiB, torch threads {r.get('threads', '?')}",
                        file=sys.stderr,
                    )
                shutil.rmtree(work)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    block = report(args, results, skip)
    print(block)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(block + "\n\n")


if __name__ == "__main__":
    main()
