"""Command line: ``proxrl train | eval | plot | bench``. User mistakes exit with code 2 and one clear line."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from . import checkpoint, rundir
from .config import RUN_DIR, ConfigError, parse_overrides, read_yaml, run_directory
from .envs import parse_env_kwargs
from .errors import EnvError, Interrupted, PeerLostError, RunnersLostError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def _algorithms() -> dict[str, Any]:
    from . import ALGORITHMS

    return ALGORITHMS


def _config_keys_epilog(algo: str | None) -> str:
    """``train --help``'s epilog: ``algo``'s config keys, grouped by the settings class that declares them (the
    ones every trainer shares first), or without ``algo`` how to get them."""
    algos = _algorithms()
    if algo not in algos:
        return (
            f"algorithms: {', '.join(algos)}\n"
            "`proxrl train ALGO --help` lists ALGO's config keys (YAML or --set key=value), grouped"
        )
    config_class = algos[algo].config_class
    helps = config_class.help()
    lines = [f"config keys of {algo} (YAML or --set key=value; a list as 128,128 or [128,128]):"]
    for declaring in reversed(config_class.__mro__):
        own = [k for k in declaring.__dict__.get("__annotations__", {}) if k in helps]
        if not own:
            continue
        title = re.split(r"[:;.]", (declaring.__doc__ or declaring.__name__).strip())[0]
        lines += ["", f"{title}:", *(f"  {key}: {helps[key]}" for key in own)]
    return "\n".join(lines)


def _help_algo(argv: list[str]) -> str | None:
    """The algorithm of ``proxrl train ALGO --help`` (its keys are then the epilog), else None."""
    if len(argv) > 1 and argv[0] == "train" and ("-h" in argv or "--help" in argv):
        return next((a for a in argv[1:] if a in _algorithms()), None)
    return None


def build_parser(help_algo: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``proxrl`` command (``train --help`` lists ``help_algo``'s config keys)."""
    p = argparse.ArgumentParser(prog="proxrl", description="Policy-gradient methods, from REINFORCE to PPO.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train",
        help="train an agent",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_config_keys_epilog(help_algo),
    )
    t.add_argument("algo", nargs="?", help="algorithm: " + ", ".join(_algorithms()))
    t.add_argument("--env", help="gymnasium id, or module:EnvId; for ippo/mappo/happo a PettingZoo module path")
    t.add_argument("--env-kwargs", default=None, help="key=value,... passed to the env's constructor")
    t.add_argument("--config", help="YAML file of config keys (see configs/)")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (repeatable)",
    )
    t.add_argument("--seed", type=int)
    t.add_argument("--total-steps", type=int)
    t.add_argument(
        "--dataset", help="grpo: prompts from a local .jsonl/.json/.parquet/.csv file or save_to_disk folder"
    )
    t.add_argument("--eval-dataset", help="grpo: held-out prompts, the same way")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"))
    t.add_argument("--run-dir", help="where to write config, logs and checkpoints (default runs/<algo>_<env>_...)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace the run already in --run-dir (default: refuse)")
    t.add_argument("--eval-episodes", type=int, default=10, help="episodes of the final evaluation (0: none)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    r = t.add_argument_group("scaling out on Ray runners (every env-stepping method; needs the ray extra)")
    r.add_argument("--runners", choices=("local", "ray"), help="step the envs here (local) or on Ray runner actors")
    r.add_argument("--num-runners", type=int, help="Ray runner actors (default 2)")
    r.add_argument("--envs-per-runner", type=int, help="envs per runner: num_envs = num_runners × this")
    r.add_argument("--ray-address", help="join this Ray cluster ('auto' or host:port) instead of starting one")
    r.add_argument("--sample-timeout-s", type=float, help="abandon and restart a runner whose rollout takes longer")
    r.add_argument("--cpus-per-runner", type=float, help="CPUs reserved per runner (default 1)")
    r.add_argument("--max-runner-restarts", type=int, help="restarts of a lost runner before it is left out")
    r.add_argument("--runner-mode", choices=("sync", "async"), help="async: update on whichever fragments arrive")
    r.add_argument("--max-staleness", type=int, help="async: drop fragments acted with weights older than this")

    e = sub.add_parser("eval", help="evaluate a trained agent")
    e.add_argument("run", help="run directory or checkpoint file")
    e.add_argument("--episodes", type=int, default=20)
    e.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mode")
    e.add_argument("--video", metavar="DIR", help="record the episodes as MP4 files in DIR")
    e.add_argument("--seed", type=int, default=None)

    pl = sub.add_parser("plot", help="plot learning curves of one or more runs")
    pl.add_argument("runs", nargs="+", help="run directories; LABEL=DIR groups runs under one label")
    pl.add_argument("--out", help="PNG file to write (default: curve.png in the current directory)")
    pl.add_argument("--x", choices=("steps", "time"), default="steps")
    pl.add_argument("--y", default="mean_return", help="progress.csv column, or several: a,b")
    pl.add_argument("--title")
    b = sub.add_parser("bench", help="measure proxrl's own training speed on a preset (no learning threshold)")
    b.add_argument("algo", nargs="?", default="ppo")
    b.add_argument("--config", default=None, help="YAML preset (default: the algorithm's defaults)")
    b.add_argument("--env", default=None)
    b.add_argument("--steps", type=int, default=None, help="env steps (default 20,000), or GRPO steps (default 20)")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p


def _build_config(algo: str, config_path: str | None, overrides: dict[str, Any]) -> tuple[Any, Any]:
    """(algorithm class, its config from the defaults < ``config_path`` YAML < ``overrides``), strictly checked."""
    from . import config as cfgmod

    from . import ALIASES

    algos = _algorithms()
    if algo not in algos:
        raise ConfigError(f"unknown algorithm '{algo}'; choose from {', '.join(algos)}")
    given = {**(read_yaml(config_path) if config_path else {}), **overrides}
    for key, fixed in ALIASES.get(algo, {}).items():
        if given.get(key, fixed) != fixed:
            raise ConfigError(
                f"{algo} means {key}={fixed}; for {key}={given[key]} use `proxrl train {algos[algo].algo}`"
            )
    cls = algos[algo]
    if not any(name in given for name in _run_dir_names(cls)):
        return cls, cfgmod.resolve(cls.config_class, config_path, overrides, base=ALIASES.get(algo))
    # another library's name of the run directory (TRL's output_dir): --run-dir's, not a config key
    names = _run_dir_names(cls)
    from_file = {k: v for k, v in (read_yaml(config_path) if config_path else {}).items() if k not in names}
    flags = {k: v for k, v in overrides.items() if k not in names}
    base = {**(ALIASES.get(algo) or {}), **from_file}
    return cls, cfgmod.resolve(cls.config_class, None, flags, base=base)


def _run_dir_names(cls: Any) -> list[str]:
    """The names a trainer's config takes for the run directory (TRL's ``output_dir`` for GRPO)."""
    return [name for name, key in cls.config_class.aliases.items() if key == RUN_DIR]


def _run_dir_given(cls: Any, config_path: str | None, overrides: dict[str, Any]) -> str | None:
    """The run directory a config file or ``--set`` names (TRL's ``output_dir``), the later winning; or None."""
    found = None
    for layer in (read_yaml(config_path) if config_path else {}), overrides:
        for name in _run_dir_names(cls):
            found = str(layer[name]) if name in layer else found
    return found


def _bench(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.overrides)
    trainer = _algorithms().get(args.algo)
    steps = args.steps if args.steps is not None or trainer is None else trainer.bench_steps
    overrides.update({"total_steps": steps, "tensorboard": False, **({"env": args.env} if args.env else {})})
    cls, config = _build_config(args.algo, args.config, overrides)
    rows: list[dict[str, Any]] = []
    agent = cls(config=config, progress=False)
    try:
        agent.learn(callback=lambda _agent, row: rows.append(row))
    finally:
        agent.close()
    steady = rows[1:] or rows  # the first update pays one-off warm-up costs
    collect = sum(r["collect_seconds"] for r in steady)
    update = sum(r["update_seconds"] for r in steady)
    unit, samples = cls.sample_unit, sum(r["samples"] for r in steady)  # unit: env steps, or completions
    total = rows[-1]["time"]
    overall = f" ({agent.global_step / total:,.0f} env steps/s overall)" if unit == "env steps" else ""
    print(f"{args.algo} on {_subject(config)}: {agent.global_step:,} steps{overall} in {total:.1f} s")
    print(f"  collect: {collect / samples * 1e6:.0f} µs per {unit[:-1]} ({samples / collect:,.0f} {unit}/s)")
    print(f"  update:  {update / len(steady) * 1e3:.1f} ms per update of {samples // len(steady)} {unit}")
    print(f"  loop:    {samples / (collect + update):,.0f} {unit}/s (collect + update, after warm-up)")
    return 0


def _train(args: argparse.Namespace) -> int:
    flags = _train_flags(args)
    # torchrun / accelerate launch: N processes, of which rank 0 keeps the run directory and prints
    processes, main = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")) == 0
    say = print if main else _silent
    progress = False if args.quiet or not main else None
    if args.resume:
        run_dir = Path(args.resume)
        if not run_dir.is_dir():
            raise ConfigError(f"--resume {run_dir}: no such run directory")
        if args.overwrite:
            raise ConfigError("--overwrite starts a new run; --resume continues one: give one of them")
        _check_processes(processes, read_yaml(run_dir / "config.yaml").get("algo") if processes > 1 else None)
    else:
        cls, config, run_dir = _new_run(args, flags, processes)
    # one process at a time writes a run directory (of a data-parallel run's, rank 0)
    with rundir.locked(run_dir) if main else contextlib.nullcontext():
        if args.resume:
            agent = _resume(args.algo, run_dir, progress, flags, say)
            if agent.global_step >= agent.config.total_steps:
                say(
                    f"nothing to train: {run_dir} is at step {agent.global_step:,} and --total-steps (the run's total, "
                    f"not steps more) is {agent.config.total_steps:,}; give a larger total to continue"
                )
                return 0
        else:
            if main:
                rundir.refuse_or_clear(run_dir, args.overwrite)
            agent = cls(config=config, run_dir=run_dir, progress=progress)
            say(
                f"training {args.algo} on {_subject(config)} for {config.total_steps:,} steps; run directory {run_dir}"
                + (f"; {processes} processes" if processes > 1 else "")
            )
        try:
            agent.learn()
        except Interrupted as stop:
            say(
                f"proxrl: stopped by {stop.signal_name} at step {stop.step:,}; kept {stop.checkpoint}\n"
                f"resume with: proxrl train --resume {run_dir}",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        except KeyboardInterrupt:
            say(f"proxrl: stopped at once; {run_dir} keeps its last checkpoint", file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            agent.close()  # the envs, any runner actors, a data-parallel run's process group
    for line in agent.summary(args.eval_episodes):
        say(line)
    written = [n + "/" * (run_dir / n).is_dir() for n in _OUTPUTS + (agent.final_checkpoint,) if (run_dir / n).exists()]
    say(f"outputs in {run_dir}: {', '.join(written)}")
    return 0


def _new_run(args: argparse.Namespace, flags: dict[str, Any], processes: int) -> tuple[Any, Any, Path]:
    """(trainer class, config, run directory) of ``train`` without ``--resume``."""
    from .rundir import default_run_dir

    if not args.algo and args.config:  # a preset or a run's config.yaml names its algorithm
        args.algo = read_yaml(args.config).get("algo")
    if not args.algo:
        raise ConfigError("train needs an algorithm, e.g. `proxrl train ppo --env CartPole-v1`")
    _check_processes(processes, args.algo)
    if processes > 1 and not args.run_dir:
        raise ConfigError(f"{processes} processes write one run directory: give it with --run-dir")
    cls, config = _build_config(args.algo, args.config, flags)
    given = run_directory(args.run_dir, _run_dir_given(cls, args.config, flags))  # --run-dir, or TRL's output_dir
    run_dir = Path(given) if given else default_run_dir(args.algo, _subject(config), config.seed)
    return cls, config, run_dir


def _silent(*args: Any, **kwargs: Any) -> None:
    """``print`` on a data-parallel run's processes other than rank 0."""


def _check_processes(processes: int, algo: str | None) -> None:
    """Several processes (torchrun) train GRPO data-parallel; the env-stepping methods scale out with runners."""
    if processes > 1 and algo != "grpo":
        raise ConfigError(
            f"WORLD_SIZE={processes}: data-parallel training on torch.distributed is GRPO's; {algo} scales out "
            "with Ray runners (--runners N) in one process"
        )


_OUTPUTS = ("config.yaml", "progress.csv", "tb", "checkpoints")  # what a run may write, besides its final save


def _subject(config: Any) -> str:
    """What a run trains on, for its messages and default folder: a dataset file's name, else the env."""
    dataset = getattr(config, "dataset", None)
    return Path(dataset).name if dataset else str(config.env)


def _train_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys ``train``'s flags set: ``--set`` pairs, then the dedicated flags given."""
    flags: dict[str, Any] = parse_overrides(args.overrides)
    for key, value in (
        ("env", args.env),
        ("seed", args.seed),
        ("total_steps", args.total_steps),
        ("dataset", args.dataset),
        ("eval_dataset", args.eval_dataset),
        ("device", args.device),
        ("runners", args.runners),
        ("num_runners", args.num_runners),
        ("ray_address", args.ray_address),
        ("sample_timeout_s", args.sample_timeout_s),
        ("cpus_per_runner", args.cpus_per_runner),
        ("max_runner_restarts", args.max_runner_restarts),
        ("runner_mode", args.runner_mode),
        ("max_staleness", args.max_staleness),
    ):
        if value is not None:
            flags[key] = value
    if args.env_kwargs is not None:
        flags["env_kwargs"] = parse_env_kwargs(args.env_kwargs)
    if args.envs_per_runner is not None:
        if args.num_runners is None:
            raise ConfigError("--envs-per-runner M needs --num-runners N (the run then steps N × M envs)")
        flags["num_envs"] = args.num_runners * args.envs_per_runner
    return flags


def _resume(
    algo_given: str | None, run_dir: Path, progress: bool | None, flags: dict[str, Any], say: Any = print
) -> Any:
    """The trainer of ``run_dir``'s newest valid checkpoint, with ``flags`` applied."""
    algos = _algorithms()
    found = checkpoint.load_newest(run_dir)
    algo = found.state["algo"]
    if algo_given and algos.get(algo_given, None) is not algos[algo]:
        raise ConfigError(f"--resume {run_dir} holds a '{algo}' run, not '{algo_given}'")
    agent = algos[algo].load(found.path, run_dir=run_dir, progress=progress, **flags)
    name = getattr(agent.config, "method", algo)  # a multi-agent run says ippo, mappo or happo
    say(f"resuming {name} from step {agent.global_step:,} to {agent.config.total_steps:,} in {run_dir}")
    return agent


def _eval(args: argparse.Namespace) -> int:
    from . import load

    agent = load(args.run)
    for line in agent.describe_evaluation(
        args.episodes, deterministic=not args.stochastic, video_dir=args.video, seed=args.seed
    ):
        print(line)
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .plotting import plot_runs

    args.out_given = args.out is not None
    args.out = args.out or "curve.png"
    out = plot_runs(args.runs, args.out, x=args.x, y=args.y, title=args.title)
    print(f"wrote {out.resolve()}" + ("" if args.out_given else " (--out FILE chooses another file)"))
    return 0


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    """proxrl's own warnings as one ``proxrl: note: …`` line; any other library's in Python's usual form."""
    if category.__module__.startswith("proxrl."):
        return f"proxrl: note: {message}\n"
    return _python_format(message, category, *args, **kwargs)


_python_format = warnings.formatwarning


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``proxrl`` command; returns the exit code."""
    warnings.formatwarning = _show_warning
    argv = sys.argv[1:] if argv is None else argv
    if os.getcwd() not in sys.path and "" not in sys.path:  # `--env my_module:Env-v0` finds ./my_module.py, as
        sys.path.insert(0, os.getcwd())  # it does under `python -m proxrl.cli` (the console script lacks it)
    args = build_parser(_help_algo(argv)).parse_args(argv)
    handlers = {"train": _train, "eval": _eval, "plot": _plot, "bench": _bench}
    try:
        return handlers[args.command](args)
    except (ConfigError, checkpoint.CheckpointError, FileNotFoundError) as e:
        print(f"proxrl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("proxrl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (FloatingPointError, EnvError, RunnersLostError, PeerLostError) as e:
        print(f"proxrl: training stopped: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
