"""``proxrl tune``: a tiny study on CartPole that prunes a known-bad trial, writes its outputs (best.yaml trains),
continues when run again, runs worker processes; the search spaces draw only valid configs; bad input exits 2."""

import csv
import re
import sys
from pathlib import Path

import pytest

from proxrl.cli import main
from proxrl.config import resolve
from proxrl.algos.pg import PGConfig
from proxrl.algos.offpolicy_pg import OffPolicyPGConfig
from proxrl.algos.ppo import PPOConfig
from proxrl.tune_space import SPACES, Draw, largest_divisor

optuna = pytest.importorskip("optuna")
pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--steps", "1024", "--evaluations", "4", "--eval-episodes", "2", "--startup-trials", "2"]
# a draw that learns CartPole within 1,024 steps (a trial of an earlier study: mean return 306 after 1,024 steps)
GOOD = {
    "num_steps_pow": 5,
    "minibatch_size_pow": 6,
    "one_minus_gamma": 0.0059,
    "one_minus_gae_lambda": 0.0064,
    "lr": 1.8e-4,
    "ent_coef": 1e-5,
    "clip_eps": 0.4,
    "num_epochs": 5,
    "max_grad_norm": 1.87,
    "net_arch": "small",
    "activation": "tanh",
}
BAD = {**GOOD, "lr": 1e-5, "num_epochs": 1}  # hardly moves from the initial policy: CartPole returns ~10


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_tune_cartpole_prunes_the_bad_trial_writes_outputs_continues_and_best_yaml_trains(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "journal.log")))
    study = optuna.create_study(study_name="ppo-CartPole-v1", storage=storage, direction="maximize")
    for params in (GOOD, {**GOOD, "activation": "relu"}, BAD):  # two complete trials, then one below their median
        study.enqueue_trial(params)
    args = ["tune", "ppo", "--env", "CartPole-v1", "--out", str(out), *TINY]
    assert main([*args, "--trials", "3"]) == 0
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "PRUNED"], rows
    assert float(rows[0]["value"]) > 100  # the good draw learned: the pruner's median is well above the bad one's
    assert rows[2]["intermediate_values_1"] and not rows[2]["intermediate_values_3"]  # stopped at evaluation 2 of 4
    assert rows[0]["user_attrs_num_steps"] == "32" and rows[0]["user_attrs_hidden_sizes"] == "[64, 64]"
    for name in ("best.yaml", "trials.csv", "history.png", "importance.png"):
        assert (out / name).stat().st_size > 0, name
    assert "trial 2: pruned at evaluation 2" in capsys.readouterr().out

    assert main([*args, "--trials", "5"]) == 0  # the same command with more trials continues the study
    text = capsys.readouterr().out
    assert "continuing study ppo-CartPole-v1: 3 of 5 trials done" in text
    assert [int(r["number"]) for r in _rows(out)] == [0, 1, 2, 3, 4]
    assert main([*args, "--trials", "5"]) == 0
    assert "nothing to run" in capsys.readouterr().out and len(_rows(out)) == 5

    best = out / "best.yaml"
    assert re.search(r"^num_steps: \d+$", best.read_text(), re.M) and "total_steps: 1024" in best.read_text()
    run = tmp_path / "run"
    train = ["train", "ppo", "--config", str(best), "--total-steps", "256", "--run-dir", str(run), "--quiet"]
    assert main([*train, "--eval-episodes", "1"]) == 0
    assert (run / "model.pt").exists()


def test_tune_jobs_2_runs_the_trials_in_two_worker_processes(tmp_path, capfd):
    out = tmp_path / "out"
    args = ["tune", "ppo", "--trials", "2", "--jobs", "2", "--out", str(out), "--steps", "128", "--evaluations", "2"]
    assert main([*args, "--eval-episodes", "1", "--set", "hidden_sizes=[16]"]) == 0
    rows = _rows(out)
    assert len(rows) == 2 and {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"}, rows
    assert "params_net_arch" not in rows[0] and "user_attrs_hidden_sizes" not in rows[0]  # --set: fixed
    assert "hidden_sizes:\n- 16\n" in (out / "best.yaml").read_text()
    text = capfd.readouterr().out  # the workers' lines, from their processes
    assert "[worker 0] trial" in text and "[worker 1] trial" in text


def test_tune_keeps_the_study_in_sqlite_and_continues_it_there(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    args = ["tune", "pg", "--storage", storage, "--out", str(tmp_path / "out"), "--steps", "64", "--evaluations", "1"]
    assert main([*args, "--trials", "1", "--eval-episodes", "1"]) == 0
    assert main([*args, "--trials", "2", "--eval-episodes", "1"]) == 0
    assert "continuing study pg-CartPole-v1: 1 of 2 trials done" in capsys.readouterr().out
    study = optuna.load_study(study_name="pg-CartPole-v1", storage=storage)
    assert (
        len(study.trials) == 2 and (tmp_path / "tune.db").exists() and not (tmp_path / "out" / "journal.log").exists()
    )
    assert main([*args, "--trials", "3", "--eval-episodes", "1", "--steps", "128"]) == 2  # another budget: refused
    assert "was run with algorithm pg, --steps 64 --evaluations 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["tune", "foo"], "unknown algorithm 'foo'"),
        (["tune", "grpo"], "grpo has no search space"),
        (["tune", "mappo"], "mappo has no search space"),
        (["tune", "ppo", "--storage", "tune.db"], "--storage tune.db: give sqlite:///FILE.db"),
        (["tune", "ppo", "--storage", "nosuchdb://host/x"], "--storage nosuchdb://host/x: cannot open it"),
        (["tune", "ppo", "--trials", "0"], "--trials must be at least 1"),
        (["tune", "ppo", "--set", "lr=-1"], "config key 'lr'"),
        (["tune", "ppo", "--runners", "ray", "--jobs", "2"], "--runners ray runs one trial at a time"),
    ],
)
def test_tune_bad_input_exits_2_with_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())  # nothing written


def test_tune_without_optuna_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["tune", "ppo"]) == 2
    assert "pip install 'proxrl[tune]'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "config",
    [
        resolve(PPOConfig, overrides={"num_envs": 6}),
        resolve(PPOConfig, overrides={"num_envs": 4, "recurrent": "lstm"}),
        resolve(PGConfig),
        resolve(PGConfig, overrides={"advantage": "return"}),
        resolve(OffPolicyPGConfig),
    ],
    ids=["ppo-6-envs", "ppo-lstm", "pg", "reinforce", "offpolicy_pg"],
)
def test_every_draw_of_a_space_is_a_valid_config_that_fits_an_evaluation_period(config, tmp_path):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    for _ in range(40):
        trial = study.ask()
        draw = Draw(trial, config, frozenset({"gamma"}), steps_per_evaluation=1000)
        SPACES[config.algo](draw)
        drawn = resolve(type(config), base=config, overrides=draw.values)  # raises ConfigError on a bad combination
        assert "gamma" not in draw.values and "one_minus_gamma" not in trial.params  # fixed: not searched
        if "num_steps" in draw.values:
            assert drawn.batch_size <= 1000
        study.tell(trial, 0.0)


def test_docs_tune_lists_every_parameter_of_every_space():
    text = (ROOT / "docs" / "tune.md").read_text()
    configs = {"ppo": PPOConfig, "pg": PGConfig, "offpolicy_pg": OffPolicyPGConfig}
    for algo, space in SPACES.items():
        trial = optuna.create_study().ask()
        space(Draw(trial, resolve(configs[algo]), frozenset(), steps_per_evaluation=10**6))
        missing = [name for name in trial.params if f"`{name}`" not in text]
        assert not missing, f"docs/tune.md does not list {algo}'s {missing}"


def test_largest_divisor_is_a_divisor_at_most_the_bound():
    assert largest_divisor(48, 5) == 4 and largest_divisor(7, 6) == 1 and largest_divisor(8, 100) == 8
    assert largest_divisor(6, 0) == 1


@pytest.mark.ray
def test_tune_runners_ray_steps_each_trials_envs_on_ray_runners(ray_cluster, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["tune", "ppo", "--runners", "ray", "--trials", "2", "--out", str(out), "--steps", "256"]
    assert main([*args, "--evaluations", "2", "--eval-episodes", "1", "--set", "num_envs=4"]) == 0
    assert len(_rows(out)) == 2 and "runners: ray" in (out / "best.yaml").read_text()


def test_tune_starts_from_the_envs_zoo_preset_unless_no_preset(tmp_path, capsys):
    args = ["tune", "ppo", "--env", "Acrobot-v1", "--trials", "1", "--steps", "256", "--evaluations", "1"]
    assert main([*args, "--eval-episodes", "1", "--out", str(tmp_path / "zoo")]) == 0
    assert "preset: ppo/Acrobot-v1.yaml of the zoo" in capsys.readouterr().out
    best = (tmp_path / "zoo" / "best.yaml").read_text()
    assert "norm_obs: true" in best and "num_envs: 16" in best  # the preset's keys the space does not draw
    assert main([*args, "--eval-episodes", "1", "--out", str(tmp_path / "raw"), "--no-preset"]) == 0
    assert "preset: none (--no-preset)" in capsys.readouterr().out
    assert "num_envs: 8" in (tmp_path / "raw" / "best.yaml").read_text()
