"""The command line as a user runs it: train, resume, eval (with video), plot, and clear errors (exit 2)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxrl.cli import main

TINY = [
    "--set",
    "num_envs=2",
    "--set",
    "num_steps=16",
    "--set",
    "num_minibatches=2",
    "--set",
    "hidden_sizes=[16]",
    "--set",
    "checkpoint_every=2",
    "--quiet",
    "--eval-episodes",
    "2",
]


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    return subprocess.run(
        [sys.executable, "-m", "proxrl.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_train_resume_eval_plot(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "ppo",
                "--env",
                "CartPole-v1",
                "--total-steps",
                "128",
                "--run-dir",
                str(run),
                "--seed",
                "1",
                *TINY,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "evaluation (2 episodes, deterministic)" in out
    for name in ("config.yaml", "progress.csv", "model.pt", "tb", "checkpoints"):
        assert (run / name).exists(), name
    assert "seed: 1" in (run / "config.yaml").read_text()
    assert main(["train", "--resume", str(run), "--total-steps", "256", "--quiet", "--eval-episodes", "0"]) == 0
    assert "resuming ppo from step 128" in capsys.readouterr().out
    rows = (run / "progress.csv").read_text().splitlines()
    assert rows[-1].startswith("256,") and len(rows) == 1 + 8  # header + one row per update, none duplicated
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert "2 episodes (deterministic): mean return" in capsys.readouterr().out
    out_png = tmp_path / "curve.png"
    assert main(["plot", f"a={run}", f"a={run}", str(run), "--out", str(out_png), "--x", "time"]) == 0
    assert out_png.stat().st_size > 5000
    two = tmp_path / "two.png"  # several columns in one figure, each a line of its own
    assert main(["plot", str(run), "--out", str(two), "--y", "mean_return,policy_loss"]) == 0
    one = tmp_path / "one.png"
    assert main(["plot", str(run), "--out", str(one), "--y", "mean_return"]) == 0
    assert two.read_bytes() != one.read_bytes()


def test_eval_records_video(tmp_path, tiny_ppo):
    pytest.importorskip("moviepy")
    pytest.importorskip("pygame")
    from proxrl import PPO

    PPO("CartPole-v1", run_dir=tmp_path / "run", progress=False, **tiny_ppo).learn(32)
    assert main(["eval", str(tmp_path / "run"), "--episodes", "1", "--video", str(tmp_path / "vid")]) == 0
    assert list((tmp_path / "vid").glob("*.mp4"))


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "ppo", "--set", "gama=0.9"], "unknown config key 'gama' for ppo; did you mean 'gamma'?"),
        (["train", "ppo", "--set", "clip_eps=0"], "'clip_eps' is 0.0; allowed: a value in (0.0, inf]"),
        (["train", "ppo", "--env", "NoSuchEnv-v0"], "unknown environment id 'NoSuchEnv-v0'"),
        (["train", "nosuchalgo"], "unknown algorithm 'nosuchalgo'"),
        (
            ["train", "ppo", "--env", "proxrl_test/Target-discrete-v0", "--set", "num_envs=3", "--set", "num_steps=5"],
            "num_minibatches=4 must divide",
        ),
        (["train", "ppo", "--config", "missing.yaml"], "config file missing.yaml does not exist"),
        (["train", "ppo", "--env", "toy_envs:proxrl_test/DictAction-v0"], "action space Dict"),
        (["train", "ppo", "--set", "num_envs=abc"], "config key 'num_envs' must be int, got 'abc'"),
        (
            [
                "train",
                "grpo",
                "--env",
                "sort",
                "--set",
                "warmup_steps=1",
                "--set",
                "tiny_hidden_size=16",
                "--set",
                "tiny_layers=1",
                "--set",
                "tiny_heads=2",
                "--set",
                "eval_examples=2",
                "--set",
                "prompts_per_step=2",
                "--set",
                "reward_funcs=[toy_envs:string_reward]",
            ],
            "reward function 'string_reward' returned 'yes'",
        ),
        (["eval", "no_such_run"], "no run directory or checkpoint file at no_such_run"),
        (["train", "ppo", "--runners", "ray", "--num-runners", "3"], "num_envs=8 must be a multiple of num_runners=3"),
        (["train", "ppo", "--envs-per-runner", "2"], "--envs-per-runner M needs --num-runners N"),
        (["train", "ppo", "--runner-mode", "async"], "runner_mode=async needs runners=ray"),
        (["train", "pg", "--runners", "ray", "--runner-mode", "async"], "runner_mode=async is for PPO and off-policy"),
        (["train", "ppo", "--dataset", "prompts.jsonl"], "--dataset is not a setting of ppo (it is of grpo)"),
        (["train", "grpo", "--num-runners", "2"], "--num-runners is not a setting of grpo (it is of "),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(tmp_path, args, message):
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_env_kwargs_reach_the_env_constructor(tmp_path, capsys):
    run = tmp_path / "kw"
    assert (
        main(
            [
                "train",
                "ppo",
                "--env",
                "proxrl_test/Target-discrete-v0",
                "--env-kwargs",
                "action_kind=box",
                "--total-steps",
                "32",
                "--run-dir",
                str(run),
                *TINY,
            ]
        )
        == 0
    )
    assert "action_kind: box" in (run / "config.yaml").read_text()
    from proxrl import PPO

    assert PPO.load(run).policy.log_std is not None  # a Box action space: Gaussian policy


def test_help_lists_config_keys():
    r = run_cli("train", "ppo", "--help")
    assert r.returncode == 0 and "gae_lambda: λ" in r.stdout


def test_train_help_offers_each_method_only_the_flags_of_its_config(capsys):
    # issue 32: the CLI builds a method's flags from its config's keys: GRPO's dataset flags only under grpo, the
    # Ray runner flags only where runners apply
    from proxrl.cli import build_parser

    def flags(algo: str) -> str:
        return (
            build_parser(algo).format_help()
            + build_parser(algo)._subparsers._group_actions[0].choices["train"].format_help()
        )

    ppo, grpo = flags("ppo"), flags("grpo")
    assert "--runners" in ppo and "--num-runners" in ppo and "--env-kwargs" in ppo
    assert "--dataset" not in ppo and "--eval-dataset" not in ppo
    assert "--dataset" in grpo and "--eval-dataset" in grpo
    assert "--runners" not in grpo and "--ray-address" not in grpo and "Ray runners" not in grpo


def test_bench_reports_speed(capsys):
    assert (
        main(
            [
                "bench",
                "--env",
                "CartPole-v1",
                "--steps",
                "96",
                "--set",
                "num_envs=2",
                "--set",
                "num_steps=16",
                "--set",
                "num_minibatches=2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "env steps/s overall" in out and "µs per env step" in out and "ms per update of 32 env steps" in out


def test_bench_grpo_reports_generation_and_update_speed_in_completions(capsys):
    assert (
        main(
            [
                "bench",
                "grpo",
                "--steps",
                "3",
                "--set",
                "warmup_steps=5",
                "--set",
                "eval_examples=4",
                "--set",
                "prompts_per_step=2",
                "--set",
                "group_size=4",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "grpo on addition: 3 steps" in out and "µs per completion" in out
    assert "ms per update of 8 completions" in out and "completions/s (collect + update" in out


def test_runners_ray_without_ray_installed_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    code = main(["train", "ppo", "--runners", "ray", "--run-dir", str(tmp_path / "r"), "--quiet"])
    assert code == 2
    assert "runners=ray needs Ray: pip install 'proxrl[ray]'" in capsys.readouterr().err
