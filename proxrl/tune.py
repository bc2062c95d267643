"""``proxrl tune ALGO``: a hyperparameter search on Optuna (the tune extra), as rl-baselines3-zoo's ``--optimize``.

A trial draws its hyperparameters from the algorithm's space (:mod:`proxrl.tune_space`, TPE sampler, seeded), lays
them over the base config (the algorithm's defaults, ``--config``, ``--set``: the keys given there stay fixed),
trains ``--steps`` env steps in one ``learn`` and, at ``--evaluations`` evenly spaced points, evaluates the policy
deterministically and reports the mean return at the evaluation's index, where the median pruner may stop it. The
study lives in a storage (a journal file in the output folder unless ``--storage`` names another), so running
the same command again continues it up to ``--trials`` trials in all, and ``--jobs K`` runs K worker processes
against it. The output folder gets the best trial's config as a preset (``best.yaml``), the trials as
``trials.csv`` and Optuna's history and importance plots.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import multiprocessing
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config as cfgmod
from .config import ConfigError, RunConfig
from .devices import limit_threads
from .env_config import ActorCriticConfig
from .errors import NonFiniteError
from .run import Trainer
from .tune_space import SPACES, Draw

if TYPE_CHECKING:
    import optuna

INSTALL_HINT = "proxrl tune needs Optuna: pip install 'proxrl[tune]'"
JOURNAL = "journal.log"  # the default storage, in the output folder
COUNTED = ("COMPLETE", "PRUNED")  # trials that count toward --trials (a failed or interrupted one is run again)


@dataclass(frozen=True)
class TuneOptions:
    """What ``proxrl tune`` was asked: the budget of the search and of each trial, where the study lives."""

    algo: str  # the command's algorithm name (reinforce stays reinforce)
    trials: int
    steps: int
    evaluations: int
    eval_episodes: int
    jobs: int
    seed: int
    startup_trials: int
    storage: str | None
    study_name: str
    out: Path
    fixed: frozenset[str]  # config keys given with --set/--env/--runners: not searched

    @property
    def steps_per_evaluation(self) -> int:
        """Env steps between two evaluations of a trial."""
        return self.steps // self.evaluations


def add_parser(sub: Any) -> None:
    """``proxrl tune``'s subcommand and flags on the CLI's subparsers."""
    t = sub.add_parser(
        "tune",
        help="search hyperparameters with Optuna (TPE, median pruner; needs the tune extra)",
        description="Search ALGO's hyperparameters on ENV (docs/tune.md lists the spaces). Running the same command "
        "again continues the study up to --trials trials in all.",
    )
    t.add_argument("algo", help="ppo, pg, reinforce or offpolicy_pg")
    t.add_argument("--env", help="gymnasium id, or module:EnvId (default: the config's)")
    t.add_argument("--trials", type=int, default=20, help="trials in the study, in all (default 20)")
    t.add_argument("--steps", type=int, help="env steps per trial (default: the config's total_steps)")
    t.add_argument("--evaluations", type=int, default=5, help="evaluations per trial, the pruner's steps (default 5)")
    t.add_argument("--eval-episodes", type=int, default=5, help="deterministic episodes per evaluation (default 5)")
    t.add_argument("--jobs", type=int, default=1, help="worker processes sharing the study (default 1)")
    t.add_argument(
        "--storage", help="sqlite:///FILE.db, a journal FILE.log, or a database URL (default: OUT/journal.log)"
    )
    t.add_argument("--study-name", help="the study in the storage (default ALGO-ENV)")
    t.add_argument("--out", help="output folder (default runs/tune-ALGO-ENV)")
    t.add_argument("--seed", type=int, default=0, help="the sampler's seed; trial n trains with seed + n (default 0)")
    t.add_argument(
        "--startup-trials", type=int, default=10, help="random trials before TPE; the pruner waits as long (default 10)"
    )
    t.add_argument("--runners", choices=("local", "ray"), help="step each trial's envs here or on Ray runners")
    t.add_argument("--config", help="YAML file of config keys: the base config the trials' draws override")
    t.add_argument("--no-preset", action="store_true", help="start from proxrl's defaults, not the env's zoo preset")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="fix a key")


def require_optuna() -> None:
    """Refuse in one line when Optuna (or pandas, for the trials table) is not installed."""
    if importlib.util.find_spec("optuna") is None or importlib.util.find_spec("pandas") is None:
        raise ConfigError(INSTALL_HINT)


def check_algo(algo: str, config_algo: str, names: list[str]) -> None:
    """Refuse an algorithm without a search space (the multi-agent trainers, GRPO)."""
    if config_algo not in SPACES:
        tunable = [n for n in names if n in SPACES or n == "reinforce"]
        raise ConfigError(f"proxrl tune searches {', '.join(tunable)}; {algo} has no search space (train it instead)")


def options_from_args(args: argparse.Namespace, base: ActorCriticConfig, fixed: frozenset[str]) -> TuneOptions:
    """The checked :class:`TuneOptions` of the command line, defaults filled in from ``base``."""
    steps = base.total_steps if args.steps is None else args.steps
    minimum = {"--trials": (args.trials, 1), "--steps": (steps, 1), "--evaluations": (args.evaluations, 1),
               "--eval-episodes": (args.eval_episodes, 1), "--jobs": (args.jobs, 1), "--seed": (args.seed, 0),
               "--startup-trials": (args.startup_trials, 0)}  # fmt: skip
    for flag, (value, low) in minimum.items():
        if value < low:
            raise ConfigError(f"{flag} must be at least {low}, got {value}")
    if steps < args.evaluations:
        raise ConfigError(f"--steps {steps} is fewer than --evaluations {args.evaluations}: give more steps")
    if base.runners == "ray" and args.jobs > 1:
        raise ConfigError("--runners ray runs one trial at a time (--jobs 1): each worker would start a Ray cluster")
    subject = base.env.replace(":", "_").replace("/", "_")
    return TuneOptions(
        algo=args.algo,
        trials=args.trials,
        steps=steps,
        evaluations=args.evaluations,
        eval_episodes=args.eval_episodes,
        jobs=args.jobs,
        seed=args.seed,
        startup_trials=args.startup_trials,
        storage=args.storage,
        study_name=args.study_name or f"{args.algo}-{subject}",
        out=Path(args.out or f"runs/tune-{args.algo}-{subject}"),
        fixed=fixed,
    )


def open_storage(storage: str | None, out: Path) -> optuna.storages.BaseStorage:
    """The study's storage: a journal file (``*.log``, and the default ``OUT/journal.log``: safe for several processes
    on one machine), SQLite with a long lock timeout, or another database URL."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if storage is None or storage.endswith((".log", ".journal")):
        path = Path(storage) if storage is not None else out / JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if "://" not in storage:
        raise ConfigError(
            f"--storage {storage}: give sqlite:///FILE.db, a journal file FILE.log, or a database URL "
            "(postgresql://..., mysql://...)"
        )
    sqlite = storage.startswith("sqlite:")
    try:  # SQLite locks the whole file: wait for another process's write instead of failing (Optuna's FAQ)
        return optuna.storages.RDBStorage(storage, engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else None)
    except Exception as e:  # sqlalchemy's errors for a URL it cannot open (unknown dialect, missing driver, bad path)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"--storage {storage}: cannot open it ({first})") from None


def make_study(options: TuneOptions, storage: optuna.storages.BaseStorage, worker: int) -> optuna.Study:
    """The study (created on first use, loaded after), with this worker's seeded TPE sampler and the median pruner.
    Each process gets another sampler seed, and so does each continuation of a study, so that no two draw the same
    random start-up trials."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours (trial_line)
    existing = optuna.study.get_all_study_names(storage)
    done = len(optuna.load_study(study_name=options.study_name, storage=storage).trials) if (
        options.study_name in existing) else 0  # fmt: skip
    sampler = optuna.samplers.TPESampler(
        n_startup_trials=options.startup_trials, seed=options.seed + 1000 * done + worker, multivariate=True
    )
    # a trial is compared from evaluation E // 3 on, with the median of the completed trials at the same evaluation
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=options.startup_trials, n_warmup_steps=options.evaluations // 3
    )
    return optuna.create_study(
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        study_name=options.study_name,
        direction="maximize",
        load_if_exists=True,
    )


def prepare_study(options: TuneOptions, storage: optuna.storages.BaseStorage, say: Callable[..., None]) -> int:
    """Create or load the study once, before any worker starts (several processes creating one study at once can
    corrupt an SQLite file, optuna#5385); refuse to continue it with another budget (the pruner compares trials at
    the same evaluations); mark trials an interrupted run left RUNNING as failed. Returns the trials still to run."""
    from optuna.trial import TrialState

    study = make_study(options, storage, worker=0)
    budget = {"algo": options.algo, "steps": options.steps, "evaluations": options.evaluations}
    if "steps" not in study.user_attrs:  # a new study (or one a script made to enqueue trials into)
        for key, value in budget.items():
            study.set_user_attr(key, value)
    given = {key: study.user_attrs.get(key, value) for key, value in budget.items()}
    if given != budget:
        raise ConfigError(
            f"study {options.study_name} was run with {_flags(given)}; continue it with the same, or start another "
            "with --study-name"
        )
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)  # an interrupted run's: it is run again
        say(f"trial {trial.number} was left running by an interrupted run: marked failed")
    counted = [t for t in study.get_trials(deepcopy=False) if t.state.name in COUNTED]
    if counted:
        say(f"continuing study {options.study_name}: {len(counted)} of {options.trials} trials done")
    return max(0, options.trials - len(counted))


def _flags(budget: dict[str, Any]) -> str:
    return f"algorithm {budget['algo']}, --steps {budget['steps']} --evaluations {budget['evaluations']}"


class Objective:
    """One trial: draw, build the config, train with evaluations at fixed fractions of the budget, report each to
    the pruner; the value is the last evaluation's mean return (rl-zoo's choice)."""

    def __init__(self, cls: type[Trainer], base: ActorCriticConfig, options: TuneOptions) -> None:
        self.cls, self.base, self.options = cls, base, options

    def config(self, trial: optuna.Trial) -> RunConfig:
        """The trial's config: its draw over the base; each trial its own seed; no TensorBoard."""
        draw = Draw(trial, self.base, self.options.fixed, self.options.steps_per_evaluation)
        SPACES[self.base.algo](draw)
        keys = {**draw.values, "seed": self.base.seed + trial.number}
        for key, value in keys.items():
            trial.set_user_attr(key, value)  # the config keys, as trials.csv and best.yaml show them
        fixed = {"total_steps": self.options.steps, "tensorboard": False, "torch_threads": 1}
        return cfgmod.resolve(type(self.base), base=self.base, overrides={**keys, **fixed})

    def __call__(self, trial: optuna.Trial) -> float:
        """Train and evaluate one trial; its value, or ``optuna.TrialPruned``."""
        import optuna

        config, options = self.config(trial), self.options
        agent = self.cls(config=config, progress=False)
        evaluations: list[float] = []
        pruned: list[int] = []  # the evaluation at which the pruner stopped the trial

        def evaluate(learner: Any, row: dict[str, Any]) -> bool:
            """After an update: evaluate at each evaluation point passed; False (stop) once the pruner says so."""
            while len(evaluations) < options.evaluations and learner.global_step >= _point(options, len(evaluations)):
                mean = float(learner.evaluate(options.eval_episodes)["mean_return"])
                trial.report(mean, len(evaluations))
                evaluations.append(mean)
                if trial.should_prune():
                    pruned.append(len(evaluations) - 1)
                    return False
            return True

        try:
            agent.learn(callback=evaluate)
        except NonFiniteError as e:  # a wild draw (a huge learning rate): pruned, as rl-zoo prunes NaN trials
            trial.set_user_attr("error", str(e).splitlines()[0])
            raise optuna.TrialPruned() from None
        finally:
            agent.close()
        if pruned or len(evaluations) < options.evaluations:
            raise optuna.TrialPruned()
        return evaluations[-1]


def _point(options: TuneOptions, index: int) -> int:
    """The env step at which evaluation ``index`` (0-based) is due: the end of its share of the budget."""
    return options.steps * (index + 1) // options.evaluations


def work(cls: type[Trainer], base: ActorCriticConfig, options: TuneOptions, worker: int, trials: int) -> None:
    """One worker: ``trials`` trials of the study, one torch thread, its own sampler seed (the target of ``--jobs``'
    processes, and of ``--jobs 1`` in this process)."""
    limit_threads(1)
    storage = open_storage(options.storage, options.out)
    study = make_study(options, storage, worker)
    say = print if options.jobs == 1 else (lambda *a: print(f"[worker {worker}]", *a, flush=True))
    try:
        study.optimize(Objective(cls, base, options), n_trials=trials, callbacks=[lambda s, t: say(trial_line(s, t))])
    except KeyboardInterrupt:  # Ctrl-C reaches every worker: its trial is marked failed, the parent reports
        if options.jobs == 1:
            raise


def trial_line(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    """One line per finished trial: its value, or where it was pruned, and the best so far."""
    seconds = trial.duration.total_seconds() if trial.duration is not None else math.nan
    if trial.state.name == "PRUNED":
        where = "" if trial.last_step is None else f" at evaluation {trial.last_step + 1}"
        error = trial.user_attrs.get("error")
        what = f"pruned{where}" + (
            f" ({error})" if error else f" (mean return {trial.value:.1f})" if trial.value is not None else ""
        )
    else:
        what = f"mean return {trial.value:.1f}" if trial.value is not None else trial.state.name.lower()
    try:
        best = f"; best {study.best_value:.1f} (trial {study.best_trial.number})"
    except ValueError:  # no trial completed yet
        best = ""
    return f"trial {trial.number}: {what} in {seconds:.1f} s{best}"


def run_workers(cls: type[Trainer], base: ActorCriticConfig, options: TuneOptions, remaining: int) -> None:
    """``remaining`` trials split over ``--jobs`` worker processes (spawned: a fresh interpreter each, no forked
    torch state), or run here with one job."""
    if options.jobs == 1:
        work(cls, base, options, 0, remaining)
        return
    shares = [remaining // options.jobs + (k < remaining % options.jobs) for k in range(options.jobs)]
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=work, args=(cls, base, options, k, share), name=f"proxrl-tune-{k}")
        for k, share in enumerate(shares)
        if share
    ]
    for process in workers:
        process.start()
    try:
        for process in workers:
            process.join()
    finally:
        for process in workers:
            if process.is_alive():  # Ctrl-C here: the workers got it too; give them a moment, then stop them
                process.join(timeout=10)
                process.terminate()
    failed = [f"{p.name} (exit code {p.exitcode})" for p in workers if p.exitcode]
    if failed:
        raise TuneError(f"worker processes failed: {', '.join(failed)}; their errors are above")


class TuneError(RuntimeError):
    """A worker process of ``--jobs`` failed (its traceback went to the terminal)."""


def write_best(study: optuna.Study, base: ActorCriticConfig, options: TuneOptions) -> Path | None:
    """``best.yaml``: the best completed trial's full config, a preset ``proxrl train ALGO --config`` trains."""
    try:
        best = study.best_trial
    except ValueError:  # no completed trial
        return None
    keys = {key: value for key, value in best.user_attrs.items() if key in type(base).keys()}
    config = cfgmod.resolve(type(base), base=base, overrides={**keys, "total_steps": options.steps})
    path = options.out / "best.yaml"
    header = (
        f"# proxrl tune {options.algo} on {config.env}: trial {best.number} of study {options.study_name}, the best of "
        f"{len(study.trials)} trials;\n# mean return {best.value:.2f} over {options.eval_episodes} deterministic "
        f"episodes after {options.steps:,} steps.\n# Train it: proxrl train {options.algo} --config {path}\n"
    )
    path.write_text(header + cfgmod.dump(config))
    return path


def write_table(study: optuna.Study, out: Path) -> Path:
    """``trials.csv``: one row per trial (number, value, state, duration, the Optuna parameters, the config keys
    they set as ``user_attrs_<key>``, each evaluation's mean return as ``intermediate_values_<index>``)."""
    attrs = ("number", "value", "state", "duration", "params", "user_attrs", "intermediate_values")
    path = out / "trials.csv"
    study.trials_dataframe(attrs=attrs).to_csv(path, index=False)
    return path


def write_plots(study: optuna.Study, out: Path) -> list[Path]:
    """Optuna's optimisation history and parameter importances (PED-ANOVA: no scikit-learn) as PNG files; the
    importances need two completed trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    plots: list[tuple[str, Callable[[optuna.Study], Any]]] = [("history.png", plot_optimization_history)]
    if len(complete) >= 2:
        plots.append(("importance.png", plot_param_importances))
    written = []
    for name, plot in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's experimental-API and few-trials warnings
            axes = plot(study)
        axes.figure.savefig(out / name, bbox_inches="tight", dpi=100)
        plt.close(axes.figure)
        written.append(out / name)
    return written


def run(args: argparse.Namespace, cls: type[Trainer], base: RunConfig, fixed: frozenset[str]) -> int:
    """``proxrl tune``: the study run to ``--trials`` trials, then its outputs (also after Ctrl-C, as rl-zoo's);
    the CLI's exit code."""
    assert isinstance(base, ActorCriticConfig)  # check_algo refused the others
    options = options_from_args(args, base, fixed)
    storage = open_storage(options.storage, options.out)
    options.out.mkdir(parents=True, exist_ok=True)
    remaining = prepare_study(options, storage, print)
    where = options.storage or str(options.out / JOURNAL)
    code = 0
    if remaining:
        print(
            f"tuning {options.algo} on {base.env}: {remaining} trials of {options.steps:,} steps, "
            f"{options.evaluations} evaluations each, {options.jobs} job(s); study {options.study_name} in {where}",
            flush=True,  # before the workers' lines
        )
        try:
            run_workers(cls, base, options, remaining)
        except KeyboardInterrupt:
            print("proxrl: interrupted; the study keeps its finished trials: the same command continues it")
            code = 130  # as `proxrl train` stopped by Ctrl-C
    else:
        print(f"study {options.study_name} already has {options.trials} trials: nothing to run (give more --trials)")
    write_outputs(storage, base, options)
    return code


def write_outputs(storage: optuna.storages.BaseStorage, base: ActorCriticConfig, options: TuneOptions) -> None:
    """The study's outputs in ``--out``, and what they say in a few lines."""
    import optuna

    study = optuna.load_study(study_name=options.study_name, storage=storage)
    states = [t.state.name for t in study.trials]
    print(", ".join(f"{states.count(s)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL") if s in states))
    best = write_best(study, base, options)
    written = [best, write_table(study, options.out), *write_plots(study, options.out)]
    if best is None:
        print("no trial finished (each was pruned or failed): no best.yaml")
    else:
        print(f"best: trial {study.best_trial.number}, mean return {study.best_value:.2f}; train it with "
              f"proxrl train {options.algo} --config {best}")  # fmt: skip
    print(f"outputs in {options.out}: {', '.join(p.name for p in written if p is not None)}")
