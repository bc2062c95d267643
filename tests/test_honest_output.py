"""Output tells the truth: what each command prints is what happened, and every mistake is one line (exit 2)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxrl import PPO, MultiAgentPPO
from proxrl.cli import main
from proxrl.errors import RunWarning

SMALL = dict(num_envs=2, num_steps=16, num_minibatches=2, hidden_sizes=(16,), tensorboard=False, progress=False)
QUIET = ["--quiet", "--eval-episodes", "0", "--set", "num_envs=2", "--set", "num_steps=16"]


def _cli(*args, cwd=None, env_extra=None, console=False):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent), **(env_extra or {}))
    command = [str(Path(sys.executable).parent / "proxrl")] if console else [sys.executable, "-m", "proxrl.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_a_zero_sum_self_play_evaluation_reports_wins_draws_losses_per_agent_and_the_method():
    pytest.importorskip("pettingzoo.classic")
    agent = MultiAgentPPO("pettingzoo.classic.tictactoe_v3", method="mappo", num_envs=2, num_steps=16, progress=False)
    agent.learn(32)
    head, per_agent, length = agent.describe_evaluation(4)
    assert head.startswith("mappo on pettingzoo.classic.tictactoe_v3: 4 episodes (deterministic): zero-sum game")
    assert "player_1 won " in head and "player_2 won " in head and "mean return 0.0" not in head
    result = agent.evaluate(4)
    wins = result["outcomes"]["player_1"]
    assert wins["win"] + wins["draw"] + wins["loss"] == 4 and wins["win"] == result["outcomes"]["player_2"]["loss"]
    assert per_agent.startswith("  return per agent: player_1 ")
    assert length.startswith("  mean length ") and "nan" not in length and float(length.split()[-1]) >= 5


def test_a_cooperative_evaluation_reports_the_team_return_and_a_real_length():
    agent = MultiAgentPPO("proxrl.envs.matrix_games", method="ippo", num_envs=2, num_steps=16, progress=False)
    head, per_agent, length = agent.describe_evaluation(3)
    assert head.startswith("ippo on proxrl.envs.matrix_games: 3 episodes (deterministic): team return (Σ over agents)")
    assert length == "  mean length 1.0"
    summary = agent.summary(2)
    assert summary[0].startswith("done: 0 steps, 0 episodes; no training episode finished yet")


def test_the_run_summary_lists_only_what_was_written(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "ppo", "--env", "CartPole-v1", "--total-steps", "64", "--run-dir", str(run), *QUIET]
    assert main([*args, "--set", "tensorboard=false"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"outputs in {run}: config.yaml, progress.csv, model.pt"


def test_resume_to_a_total_already_reached_says_there_is_nothing_to_train(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "ppo", "--env", "CartPole-v1", "--total-steps", "64", "--run-dir", str(run), *QUIET]) == 0
    rows = (run / "progress.csv").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--total-steps", "64"]) == 0
    out = capsys.readouterr().out
    assert "nothing to train: " in out and "--total-steps (the run's total, not steps more) is 64" in out
    assert (run / "progress.csv").read_text() == rows
    assert main(["train", "--resume", str(run), "--total-steps", "96", "--quiet", "--eval-episodes", "0"]) == 0
    assert "resuming ppo from step 64 to 96" in capsys.readouterr().out

    agent = PPO("CartPole-v1", total_steps=32, **SMALL)
    agent.learn()
    with pytest.warns(RunWarning, match="nothing to train: the run is at step 32 and total_steps is 32"):
        agent.learn()
    agent.learn(32)  # n more
    assert agent.global_step == 64


def test_image_observations_warn_that_they_are_flattened_into_an_mlp():
    with pytest.warns(
        RunWarning, match=r"look like images \(8×8×3 uint8\) and are flattened into an MLP of 192 inputs"
    ):
        PPO("toy_envs:proxrl_test/Image-v0", policy="mlp", **SMALL)  # (auto: the small CNN, tests/test_observations.py)


def _help(*args: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([*args, "--help"])
    return capsys.readouterr().out


def test_train_help_lists_the_chosen_methods_keys_grouped(capsys):
    text = _help("train", "ppo", capsys=capsys)
    lines = text.splitlines()
    assert "config keys of ppo" in text and "  clip_eps: " in text and "group_size" not in text
    assert "Settings every trainer shares:" in text and "Clip-PPO hyperparameters:" in text
    assert text.index("  seed: ") < text.index("  clip_eps: ")  # the shared keys first
    assert len(lines) < 150
    short = _help("train", capsys=capsys)
    assert "`proxrl train ALGO --help` lists ALGO's config keys" in short and "clip_eps" not in short


def test_a_comma_list_is_accepted_and_a_wrong_list_shows_the_syntax(tmp_path):
    agent = PPO("CartPole-v1", **{**SMALL, "hidden_sizes": "32,32"})
    assert agent.config.hidden_sizes == (32, 32)
    r = _cli("train", "ppo", "--set", "hidden_sizes=abc", "--run-dir", str(tmp_path / "r"))
    assert r.returncode == 2
    assert r.stderr.strip().endswith("write it as hidden_sizes=[64,64] or hidden_sizes=64,64")


@pytest.mark.slow
def test_the_console_script_imports_an_env_module_from_the_current_directory(tmp_path):
    (tmp_path / "my_envs.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('MyCartPole-v0', entry_point='gymnasium.envs.classic_control:CartPoleEnv', "
        "max_episode_steps=50)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [str(Path(sys.executable).parent / "proxrl"), "train", "ppo", "--env", "my_envs:MyCartPole-v0"]
    r = subprocess.run(
        [*command, "--total-steps", "64", "--run-dir", "run", *QUIET],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "training ppo on my_envs:MyCartPole-v0" in r.stdout


def test_plot_draws_one_labelled_panel_per_column_and_refuses_an_unknown_column(tmp_path, capsys):
    import matplotlib.image

    run = tmp_path / "run"
    assert main(["train", "ppo", "--env", "CartPole-v1", "--total-steps", "128", "--run-dir", str(run), *QUIET]) == 0
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    assert main(["plot", str(run), "--out", str(one)]) == 0
    assert main(["plot", str(run), "--y", "mean_return,entropy", "--out", str(two)]) == 0
    assert matplotlib.image.imread(two).shape[0] > 1.7 * matplotlib.image.imread(one).shape[0]  # two panels
    capsys.readouterr()
    assert main(["plot", str(run), "--y", "mean_return,badcol", "--out", str(tmp_path / "bad.png")]) == 2
    err = capsys.readouterr().err
    assert "no column badcol in progress.csv; columns: approx_kl, " in err and not (tmp_path / "bad.png").exists()
    os.chdir(tmp_path)
    assert main(["plot", str(run)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'curve.png'} (--out FILE chooses another file)"


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "RUN", "--episodes", "0"], "evaluation needs at least 1 episode, got 0"),
        (
            ["train", "ppo", "--env", "pettingzoo.classic.rps_v2"],
            "pettingzoo.classic.rps_v2 is a PettingZoo environment: train it with a multi-agent method",
        ),
        (
            ["train", "ippo", "--env", "CartPole-v1"],
            "CartPole-v1 is a single-agent gymnasium environment: train it with `proxrl train ppo --env CartPole-v1`",
        ),
        (["train", "grpo", "--set", "model=NOMODEL"], "transformers cannot load it as a causal LM: Unrecognized model"),
    ],
)
def test_mistakes_that_ended_in_tracebacks_are_one_line(tmp_path, args, message):
    if "RUN" in args:
        _cli("train", "ppo", "--env", "CartPole-v1", "--total-steps", "32", "--run-dir", str(tmp_path / "run"), *QUIET)
    folder = tmp_path / "nomodel"
    folder.mkdir()
    (folder / "config.json").write_text('{"vocab_size": 10}')
    args = [str(tmp_path / "run") if a == "RUN" else a.replace("NOMODEL", str(folder)) for a in args]
    r = _cli(*args, "--run-dir", str(tmp_path / "new")) if args[0] == "train" else _cli(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


@pytest.mark.slow
def test_bench_grpo_runs(tmp_path):
    pytest.importorskip("transformers")
    r = _cli(
        "bench",
        "grpo",
        "--steps",
        "2",
        *[f"--set={kv}" for kv in ("tiny_hidden_size=16", "tiny_layers=1", "tiny_heads=2", "warmup_steps=2")],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "completions/s" in r.stdout


def test_a_multi_agent_run_is_named_by_its_method_on_resume(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "mappo", "--env", "proxrl.envs.matrix_games", "--total-steps", "32", "--run-dir", str(run)]
    assert main([*args, *QUIET]) == 0
    assert main(["train", "--resume", str(run), "--total-steps", "64", "--quiet", "--eval-episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert "resuming mappo from step 32 to 64" in out and "multiagent_ppo" not in out
