"""The preset zoo (issue 33): every preset loads strictly and says where it comes from; ``proxrl train ALGO --env
ENV`` picks ENV's preset and says so, with the network and preprocessing; ``--no-preset``, ``--config`` and flags
win over it; ``proxrl presets`` lists them; unset normalisation is decided from the observation space."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from gymnasium import spaces

from proxrl import ALGORITHMS, PPO, ConfigError, presets
from proxrl.cli import main
from proxrl.config import from_dict
from proxrl.envs.preprocessing import badly_scaled

ZOO = presets.all_presets()
TINY = ["--set", "num_envs=2", "--set", "num_steps=16", "--set", "num_minibatches=2", "--quiet"]


@pytest.mark.parametrize("preset", ZOO, ids=[f"{p.algo}/{p.name}" for p in ZOO])
def test_every_zoo_preset_loads_with_the_strict_loader_and_cites_its_source_and_figures(preset):
    config = from_dict(ALGORITHMS[preset.algo].config_class, preset.values)
    assert preset.source, f"{preset.path}: no '# source:' line"
    assert preset.zoo, f"{preset.path}: no '# zoo:' line (the published figure, or that there is none)"
    assert preset.measured, f"{preset.path}: no '# proxrl:' line (a figure measured here, or 'not yet measured here')"
    # normalisation is written out: a zoo preset does not depend on the rule for unset keys
    assert config.norm_obs is not None and config.norm_reward is not None
    if preset.name != presets.ATARI:
        assert presets.preset_name(config.env) == preset.name, f"{preset.path} trains {config.env}"


def test_the_zoo_covers_the_issues_envs_and_ships_as_package_data():
    names = {(p.algo, p.name) for p in ZOO}
    for env in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1",
                "LunarLander-v3", "LunarLanderContinuous-v3", "BipedalWalker-v3", "CarRacing-v3", "HalfCheetah-v5",
                "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "Swimmer-v5", "Reacher-v5", "Pusher-v5",
                "InvertedPendulum-v5", "InvertedDoublePendulum-v5", "atari"):  # fmt: skip
        assert ("ppo", env) in names, env
    assert {("pg", "CartPole-v1"), ("pg", "Acrobot-v1"), ("pg", "Pendulum-v1")} <= names
    assert presets.ZOO.parent.name == "proxrl"  # inside the package, not a source checkout's configs/


def test_every_atari_game_and_module_prefixed_id_finds_its_preset():
    pong = presets.find("ppo", "ALE/Pong-v5")
    assert pong is not None and pong.name == "atari"
    assert pong.values_for("ALE/Pong-v5")["env"] == "ALE/Pong-v5"  # the run's game, not the file's
    assert pong.figure(pong.zoo, "ALE/Pong-v5").startswith("20.99 ± 0.11")
    assert presets.find("ppo", "mymodule:Acrobot-v1").name == "Acrobot-v1"
    assert presets.find("ppo", "NoSuchEnv-v0") is None
    assert presets.find("reinforce", "CartPole-v1") is None


def _config(run):
    return yaml.safe_load((run / "config.yaml").read_text())


def test_train_with_env_picks_its_preset_and_says_which_network_and_preprocessing(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "ppo", "--env", "MountainCarContinuous-v0", "--total-steps", "64", "--run-dir", str(run)]
    assert main([*argv, *TINY, "--eval-episodes", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("preset: ppo/MountainCarContinuous-v0.yaml of the zoo"), lines[1]
    assert lines[2].startswith("network: observations 2 float32 flattened") and "[64, 64] tanh" in lines[2]
    assert lines[3].startswith("preprocessing: observations normalised"), lines[3]
    cfg = _config(run)
    assert (cfg["norm_obs"], cfg["norm_reward"], cfg["num_steps"], cfg["total_steps"]) == (True, True, 16, 64)


def test_no_preset_gives_raw_defaults_and_config_replaces_the_preset(tmp_path, capsys):
    argv = ["train", "ppo", "--env", "CartPole-v1", "--total-steps", "64", "--quiet", "--eval-episodes", "0"]
    assert main([*argv, "--run-dir", str(tmp_path / "a")]) == 0
    assert _config(tmp_path / "a")["num_epochs"] == 20  # the zoo's CartPole preset
    assert main([*argv, "--run-dir", str(tmp_path / "b"), "--no-preset"]) == 0
    assert _config(tmp_path / "b")["num_epochs"] == 4  # proxrl's default
    own = tmp_path / "own.yaml"
    own.write_text("algo: ppo\nnum_epochs: 2\n")
    assert main([*argv, "--run-dir", str(tmp_path / "c"), "--config", str(own)]) == 0
    assert _config(tmp_path / "c")["num_epochs"] == 2 and _config(tmp_path / "c")["num_steps"] == 128
    out = capsys.readouterr().out
    assert "preset: ppo/CartPole-v1.yaml" in out and "preset: none (--no-preset)" in out
    assert f"preset: {own} (--config)" in out


def test_presets_lists_env_algorithm_budget_and_figures(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.split()[:2] == ["ppo", "LunarLander-v3"])
    assert row.split()[2] == "1M" and "242.12 ± 31.82" in row
    assert any(line.split()[:2] == ["ppo", "ALE/Pong-v5"] for line in out.splitlines())
    assert main(["presets", "pg"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:-1]
    assert rows and all(r.startswith("pg ") for r in rows)
    assert main(["presets", "nope"]) == 2


def test_badly_scaled_observations_are_unbounded_wide_or_narrow_and_cartpole_and_pendulum_are_not():
    mcc = spaces.Box(np.array([-1.2, -0.07], np.float32), np.array([0.6, 0.07], np.float32))  # velocity ±0.07
    acrobot = spaces.Box(
        -np.array([1, 1, 1, 1, 12.6, 28.3], np.float32), np.array([1, 1, 1, 1, 12.6, 28.3], np.float32)
    )
    cartpole = spaces.Box(
        -np.array([4.8, np.inf, 0.42, np.inf], np.float32), np.array([4.8, np.inf, 0.42, np.inf], np.float32)
    )
    pendulum = spaces.Box(np.array([-1, -1, -8], np.float32), np.array([1, 1, 8], np.float32))
    assert badly_scaled(mcc) and badly_scaled(acrobot)
    assert badly_scaled(spaces.Box(-np.inf, np.inf, (17,), np.float64))  # MuJoCo: no scale given at all
    assert not badly_scaled(cartpole) and not badly_scaled(pendulum)
    assert not badly_scaled(spaces.Box(0, 255, (84, 84, 4), np.uint8))
    assert not badly_scaled(spaces.Discrete(5))


def test_unset_normalisation_is_decided_by_the_env_and_a_set_one_is_kept():
    assert PPO("MountainCarContinuous-v0").config.norm_obs is True
    pendulum = PPO("Pendulum-v1").config
    assert (pendulum.norm_obs, pendulum.norm_reward) == (False, False)
    mixed = PPO("MountainCarContinuous-v0", norm_reward=False).config
    assert (mixed.norm_obs, mixed.norm_reward) == (True, False)


def test_from_preset_lays_keyword_overrides_over_the_envs_preset_and_refuses_an_env_without_one():
    agent = PPO.from_preset("MountainCarContinuous-v0", seed=3, num_steps=64)
    cfg = agent.config
    assert (cfg.seed, cfg.num_steps, cfg.norm_obs, cfg.total_steps) == (3, 64, True, 100_000)
    assert PPO("Acrobot-v1").config.num_envs == 8  # the class itself keeps proxrl's defaults
    with pytest.raises(ConfigError, match="no ppo preset for Nope-v0; `proxrl presets ppo` lists them"):
        PPO.from_preset("Nope-v0")
