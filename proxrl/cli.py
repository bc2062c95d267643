"""Command line: ``proxrl train | presets | eval | plot | bench | tune``. User mistakes exit with code 2 and one
clear line."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from pathlib import Path
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import checkpoint, presets, rundir, tune
from .config import RUN_DIR, ConfigError, RunConfig, parse_overrides, read_yaml, run_directory
from .envs import parse_env_kwargs
from .errors import EnvError, Interrupted, PeerLostError, RunnersLostError
from .run import Trainer

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def _algorithms() -> Mapping[str, type[Trainer]]:
    """``proxrl train``'s algorithm names and their trainers, seen through the Trainer protocol."""
    from . import ALGORITHMS

    return ALGORITHMS


def _config_keys_epilog(algo: str | None) -> str:
    """``train --help``'s epilog: ``algo``'s config keys, grouped by the settings class that declares them (the
    ones every trainer shares first), or without ``algo`` how to get them."""
    algos = _algorithms()
    if algo is None or algo not in algos:
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


@dataclass(frozen=True)
class ConfigFlag:
    """A ``train`` flag that sets one config key: offered to a method when its config has the key."""

    flag: str
    key: str
    help: str
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    runners: bool = False  # listed under "scaling out on Ray runners"


CONFIG_FLAGS = (
    ConfigFlag("--env", "env", "gymnasium id, or module:EnvId; for ippo/mappo/happo a PettingZoo module path"),
    ConfigFlag("--env-kwargs", "env_kwargs", "key=value,... passed to the env's constructor"),
    ConfigFlag("--seed", "seed", "random seed", int),
    ConfigFlag("--total-steps", "total_steps", "steps to train for (a resumed run's total, not steps more)", int),
    ConfigFlag("--dataset", "dataset", "prompts from a local .jsonl/.json/.parquet/.csv file or save_to_disk folder"),
    ConfigFlag("--eval-dataset", "eval_dataset", "held-out prompts, the same way"),
    ConfigFlag("--device", "device", "where to train", choices=("auto", "cpu", "cuda")),
    ConfigFlag(
        "--runners", "runners", "step the envs here or on Ray runner actors", runners=True, choices=("local", "ray")
    ),
    ConfigFlag("--num-runners", "num_runners", "Ray runner actors (default 2)", int, runners=True),
    ConfigFlag("--envs-per-runner", "num_envs", "envs per runner: num_envs = num_runners × this", int, runners=True),
    ConfigFlag("--ray-address", "ray_address", "join this Ray cluster ('auto' or host:port)", runners=True),
    ConfigFlag(
        "--sample-timeout-s", "sample_timeout_s", "restart a runner whose rollout takes longer", float, runners=True
    ),
    ConfigFlag("--cpus-per-runner", "cpus_per_runner", "CPUs reserved per runner (default 1)", float, runners=True),
    ConfigFlag(
        "--max-runner-restarts",
        "max_runner_restarts",
        "restarts of a lost runner before it is left out",
        int,
        runners=True,
    ),
    ConfigFlag(
        "--runner-mode",
        "runner_mode",
        "async: update on whichever fragments arrive",
        runners=True,
        choices=("sync", "async"),
    ),
    ConfigFlag(
        "--max-staleness",
        "max_staleness",
        "async: drop fragments acted with weights older than this",
        int,
        runners=True,
    ),
)


def _dest(flag: ConfigFlag) -> str:
    return flag.flag.lstrip("-").replace("-", "_")


def _add_config_flags(t: argparse.ArgumentParser, algo: str | None) -> None:
    """The flags that set config keys: with ``algo`` known (``train ALGO --help``) only those its config has, else
    all of them (which apply is checked once the algorithm is known: :func:`_check_flags`)."""
    algos = _algorithms()
    keys = algos[algo].config_class.keys() if algo is not None and algo in algos else None
    runners = t.add_argument_group("scaling out on Ray runners (needs the ray extra)")
    for flag in CONFIG_FLAGS:
        if keys is None or (flag.key in keys):
            where = runners if flag.runners else t
            where.add_argument(flag.flag, dest=_dest(flag), type=flag.type, choices=flag.choices, help=flag.help)


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
    _add_config_flags(t, help_algo)
    t.add_argument("--config", help="YAML file of config keys (see configs/); replaces the env's zoo preset")
    t.add_argument(
        "--no-preset", action="store_true", help="proxrl's defaults, not the env's zoo preset (`proxrl presets`)"
    )
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (repeatable)",
    )
    t.add_argument("--run-dir", help="where to write config, logs and checkpoints (default runs/<algo>_<env>_...)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace the run already in --run-dir (default: refuse)")
    t.add_argument("--eval-episodes", type=int, default=10, help="episodes of the final evaluation (0: none)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    ps = sub.add_parser("presets", help="list the zoo's tuned presets, which `proxrl train` picks by env")
    ps.add_argument("algo", nargs="?", help="only this algorithm's: " + ", ".join(presets.algorithms()))

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
    tune.add_parser(sub)
    return p


def _build_config(
    algo: str, config_path: str | None, overrides: dict[str, Any], preset: Mapping[str, Any] | None = None
) -> tuple[type[Trainer], RunConfig]:
    """(algorithm class, its config from the defaults < ``preset`` < ``config_path`` YAML < ``overrides``),
    strictly checked."""
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
    below = {**(preset or {}), **(ALIASES.get(algo) or {})}
    if not any(name in given for name in _run_dir_names(cls)):
        return cls, cfgmod.resolve(cls.config_class, config_path, overrides, base=below)
    # another library's name of the run directory (TRL's output_dir): --run-dir's, not a config key
    names = _run_dir_names(cls)
    from_file = {k: v for k, v in (read_yaml(config_path) if config_path else {}).items() if k not in names}
    flags = {k: v for k, v in overrides.items() if k not in names}
    base = {**below, **from_file}
    return cls, cfgmod.resolve(cls.config_class, None, flags, base=base)


def _run_dir_names(cls: type[Trainer]) -> list[str]:
    """The names a trainer's config takes for the run directory (TRL's ``output_dir`` for GRPO)."""
    return [name for name, key in cls.config_class.aliases.items() if key == RUN_DIR]


def _run_dir_given(cls: type[Trainer], config_path: str | None, overrides: dict[str, Any]) -> str | None:
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
    print(f"{args.algo} on {config.subject()}: {agent.global_step:,} steps{overall} in {total:.1f} s")
    print(f"  collect: {collect / samples * 1e6:.0f} µs per {unit[:-1]} ({samples / collect:,.0f} {unit}/s)")
    print(f"  update:  {update / len(steady) * 1e3:.1f} ms per update of {samples // len(steady)} {unit}")
    print(f"  loop:    {samples / (collect + update):,.0f} {unit}/s (collect + update, after warm-up)")
    return 0


def _tune(args: argparse.Namespace) -> int:
    """``proxrl tune``: the base config as ``train`` builds it (defaults < the env's zoo preset < ``--config`` <
    ``--set``), the keys given fixed, then the study (:mod:`proxrl.tune`). The preset's ``total_steps`` is the
    default ``--steps``, as in rl-zoo."""
    tune.require_optuna()
    algos = _algorithms()
    if args.algo not in algos:
        raise ConfigError(f"unknown algorithm '{args.algo}'; choose from {', '.join(algos)}")
    tune.check_algo(args.algo, algos[args.algo].config_class.algo, list(algos))
    given = parse_overrides(args.overrides)
    given.update({k: v for k, v in (("env", args.env), ("runners", args.runners)) if v is not None})
    preset = _pick_preset(args, given)
    cls, base = _build_config(args.algo, args.config, given, preset.values_for(given["env"]) if preset else None)
    print(*_preset_lines(args, base, preset))
    return tune.run(args, cls, base, frozenset(given))  # --config's keys are a base the draws override


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
        if processes > 1:
            _check_processes(processes, str(read_yaml(run_dir / "config.yaml").get("algo")))
    else:
        cls, config, run_dir, preset = _new_run(args, flags, processes)
    # one process at a time writes a run directory (of a data-parallel run's, rank 0)
    with rundir.locked(run_dir) if main else contextlib.nullcontext():
        if args.resume:
            agent = _resume(args, run_dir, progress, flags, say)
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
                f"training {args.algo} on {config.subject()} for {config.total_steps:,} steps; run directory {run_dir}"
                + (f"; {processes} processes" if processes > 1 else "")
            )
            for line in [*_preset_lines(args, config, preset), *agent.describe()]:
                say(line)
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


def _new_run(
    args: argparse.Namespace, flags: dict[str, Any], processes: int
) -> tuple[type[Trainer], RunConfig, Path, presets.Preset | None]:
    """(trainer class, config, run directory, the zoo preset laid under it) of ``train`` without ``--resume``."""
    from .rundir import default_run_dir

    if not args.algo and args.config:  # a preset or a run's config.yaml names its algorithm
        args.algo = read_yaml(args.config).get("algo")
    if not args.algo:
        raise ConfigError("train needs an algorithm, e.g. `proxrl train ppo --env CartPole-v1`")
    _check_processes(processes, args.algo)
    if processes > 1 and not args.run_dir:
        raise ConfigError(f"{processes} processes write one run directory: give it with --run-dir")
    if args.algo in _algorithms():
        _check_flags(args, _algorithms()[args.algo], args.algo)
    preset = _pick_preset(args, flags)
    cls, config = _build_config(args.algo, args.config, flags, preset.values_for(flags["env"]) if preset else None)
    given = run_directory(args.run_dir, _run_dir_given(cls, args.config, flags))  # --run-dir, or TRL's output_dir
    run_dir = Path(given) if given else default_run_dir(args.algo, config.subject(), config.seed)
    return cls, config, run_dir, preset


def _pick_preset(args: argparse.Namespace, flags: dict[str, Any]) -> presets.Preset | None:
    """The zoo's preset of ``args.algo`` for the env given (``--env`` or ``--set env=``), unless ``--config`` or
    ``--no-preset`` is given (issue 33: a user should never need to know the zoo's numbers)."""
    if args.config or args.no_preset or "env" not in flags:
        return None
    return presets.find(args.algo, str(flags["env"]))


def _preset_lines(args: argparse.Namespace, config: RunConfig, preset: presets.Preset | None) -> list[str]:
    """``train``'s line on the preset: the one used, or why none."""
    if preset is not None:
        source = preset.source.replace("DLR-RM/rl-baselines3-zoo@", "rl-zoo3@").split(" (")[0]
        figure = preset.figure(preset.zoo, config.env).split(" (")[0]
        zoo = f"; rl-zoo: {figure}" if figure and not figure.startswith("no ") else ""
        return [
            f"preset: {preset.algo}/{preset.path.name} of the zoo ({source}{zoo}); flags and --set override it, "
            "--no-preset trains with proxrl's defaults"
        ]
    if args.config:
        return [f"preset: {args.config} (--config)"]
    if args.no_preset:
        return ["preset: none (--no-preset): proxrl's defaults"]
    return [f"preset: none for {args.algo} on {config.env} (`proxrl presets` lists the zoo): proxrl's defaults"]


Say = Callable[..., None]  # print, or on a data-parallel run's other processes nothing


def _silent(*args: Any, **kwargs: Any) -> None:
    """``print`` on a data-parallel run's processes other than rank 0."""


def _check_processes(processes: int, algo: str) -> None:
    """Several processes (torchrun) train a method that declares ``data_parallel``; the env-stepping methods scale
    out with runners instead."""
    algos = _algorithms()
    if processes > 1 and algo in algos and not algos[algo].data_parallel:
        takers = ", ".join(name for name, cls in algos.items() if cls.data_parallel)
        raise ConfigError(
            f"WORLD_SIZE={processes}: data-parallel training on torch.distributed is {takers}'s; {algo} scales out "
            "with Ray runners (--runners ray) in one process"
        )


_OUTPUTS = ("config.yaml", "progress.csv", "tb", "checkpoints")  # what a run may write, besides its final save


def _train_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys ``train``'s flags set: ``--set`` pairs, then the dedicated flags given."""
    flags: dict[str, Any] = parse_overrides(args.overrides)
    given = vars(args)
    for flag in CONFIG_FLAGS:
        value = given.get(_dest(flag))
        if value is not None:
            flags[flag.key] = value
    if args.env_kwargs is not None:  # the loop put the flag's text there
        flags["env_kwargs"] = parse_env_kwargs(args.env_kwargs)
    if args.envs_per_runner is not None:  # num_envs is N × M, not the M the loop put there
        if args.num_runners is None:
            raise ConfigError("--envs-per-runner M needs --num-runners N (the run then steps N × M envs)")
        flags["num_envs"] = args.num_runners * args.envs_per_runner
    return flags


def _check_flags(args: argparse.Namespace, cls: type[Trainer], algo: str) -> None:
    """Refuse a flag that sets a key ``algo``'s config does not have (GRPO's --dataset under ppo, Ray's under grpo)."""
    keys, given = cls.config_class.keys(), vars(args)
    for flag in CONFIG_FLAGS:
        if given.get(_dest(flag)) is not None and flag.key not in keys:
            takers = sorted({name for name, c in _algorithms().items() if flag.key in c.config_class.keys()})
            raise ConfigError(
                f"{flag.flag} is not a setting of {algo} (it is of {', '.join(takers)}); "
                f"`proxrl train {algo} --help` lists {algo}'s flags"
            )


def _resume(
    args: argparse.Namespace, run_dir: Path, progress: bool | None, flags: dict[str, Any], say: Say = print
) -> Trainer:
    """The trainer of ``run_dir``'s newest valid checkpoint, with ``flags`` applied."""
    algos = _algorithms()
    found = checkpoint.load_newest(run_dir)
    algo = found.state["algo"]
    if args.algo and algos.get(args.algo, None) is not algos[algo]:
        raise ConfigError(f"--resume {run_dir} holds a '{algo}' run, not '{args.algo}'")
    _check_flags(args, algos[algo], algo)
    agent = algos[algo].load(found.path, run_dir=run_dir, progress=progress, **flags)
    say(f"resuming {agent.method} from step {agent.global_step:,} to {agent.config.total_steps:,} in {run_dir}")
    return agent


def _presets(args: argparse.Namespace) -> int:
    """``proxrl presets [ALGO]``: the zoo, one line per (algorithm, env)."""
    if args.algo is not None and args.algo not in presets.algorithms():
        raise ConfigError(f"no presets for '{args.algo}'; the zoo has {', '.join(presets.algorithms())}")
    for line in presets.table(args.algo):
        print(line)
    print("`proxrl train ALGO --env ENV` picks ENV's preset; benchmarks/ZOO.md has the figures measured here")
    return 0


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
    handlers = {"train": _train, "eval": _eval, "plot": _plot, "bench": _bench, "presets": _presets, "tune": _tune}
    try:
        return handlers[args.command](args)
    except (ConfigError, checkpoint.CheckpointError, FileNotFoundError) as e:
        print(f"proxrl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("proxrl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (FloatingPointError, EnvError, RunnersLostError, PeerLostError, tune.TuneError) as e:
        print(f"proxrl: training stopped: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
