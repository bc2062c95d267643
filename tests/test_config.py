"""Strict config loading: unknown keys, wrong types and out-of-range values are refused by name."""

from pathlib import Path

import pytest
import yaml

from proxrl import config as cfgmod
from proxrl.algos.ppo import PPOConfig
from proxrl.config import ConfigError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_defaults_round_trip_through_yaml():
    c = PPOConfig(gamma=0.97, hidden_sizes=(32, 16), env_kwargs={"a": 1}, target_kl=0.02)
    assert cfgmod.from_dict(PPOConfig, yaml.safe_load(cfgmod.dump(c))) == c


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_preset_loads(path):
    from proxrl import ALGORITHMS

    cls = ALGORITHMS[cfgmod.read_yaml(path)["algo"]]
    c = cfgmod.resolve(cls.config_class, path)
    assert c.algo == cls.algo and c.total_steps > 0


@pytest.mark.parametrize(
    "values,match",
    [
        ({"gama": 0.9}, "unknown config key 'gama'.*did you mean 'gamma'"),
        ({"gamma": 0.0}, r"'gamma' is 0.0; allowed: a value in \(0.0, 1.0\]"),
        ({"gamma": 1.5}, "'gamma'"),
        ({"gae_lambda": -0.1}, r"'gae_lambda'.*\[0.0, 1.0\]"),
        ({"clip_eps": 0}, r"'clip_eps'.*\(0.0, inf\]"),
        ({"clip_eps": -0.2}, "'clip_eps'"),
        ({"num_envs": "eight"}, "'num_envs' must be int"),
        ({"anneal_lr": "yes"}, "'anneal_lr' must be bool"),
        ({"lr": float("nan")}, "'lr'"),
        ({"activation": "sigmoid"}, "'activation'.*one of"),
        ({"num_envs": 3, "num_steps": 5, "num_minibatches": 4}, "num_minibatches=4 must divide.*15"),
        ({"algo": "grpo"}, "for algorithm 'grpo', not 'ppo'"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(values, match):
    with pytest.raises(ConfigError, match=match):
        cfgmod.from_dict(PPOConfig, values)


def test_overrides_parse_yaml_scalars_and_win_over_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("gamma: 0.9\nlr: 1e-3\nhidden_sizes: [32, 32]\n")
    c = cfgmod.resolve(PPOConfig, f, cfgmod.parse_overrides(["gamma=0.95", "target_kl=0.01", "norm_obs=true"]))
    assert (c.gamma, c.lr, c.hidden_sizes, c.target_kl, c.norm_obs) == (0.95, 1e-3, (32, 32), 0.01, True)


@pytest.mark.parametrize("text,match", [("- a\n- b\n", "must hold a mapping"), ("a: [1,\n", "not valid YAML")])
def test_bad_files_are_clear_errors(tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        cfgmod.resolve(PPOConfig, f)
    with pytest.raises(ConfigError, match="does not exist"):
        cfgmod.resolve(PPOConfig, tmp_path / "missing.yaml")


def test_set_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="key=value"):
        cfgmod.parse_overrides(["gamma"])


def test_every_field_has_help():
    assert all(text and not text.startswith(" (") for text in PPOConfig.help().values())


def test_each_trainer_accepts_only_the_keys_it_uses():
    # GRPO samples completions, not env steps: it has no N envs, vectorisation or return-based stop rule; the
    # multi-agent collectors step PettingZoo envs themselves (no gymnasium vectorisation)
    import dataclasses

    from proxrl import GRPOConfig, MultiAgentPPOConfig

    for cls, keys in (
        (GRPOConfig, ("num_envs", "vectorization", "stop_return")),
        (MultiAgentPPOConfig, ("vectorization", "norm_obs", "shared_trunk")),
    ):
        for key in keys:
            with pytest.raises(ConfigError, match=f"unknown config key '{key}'"):
                cfgmod.from_dict(cls, {key: 1})
    shared = set(f.name for f in dataclasses.fields(PPOConfig)) & set(
        f.name for f in dataclasses.fields(MultiAgentPPOConfig)
    )
    assert {"num_envs", "num_steps", "lr", "gamma", "gae_lambda", "clip_eps", "hidden_sizes", "stop_return"} <= shared


def test_objects_passed_in_python_keep_one_path_each():
    from proxrl.config import object_path, registered_object

    def first():
        return 1

    second = lambda: 2  # noqa: E731 - a lambda is what a notebook passes
    third = lambda: 3  # noqa: E731 - the same qualname as second
    paths = [object_path(f) for f in (first, second, third)]
    assert paths[0].endswith(":test_objects_passed_in_python_keep_one_path_each.<locals>.first")
    assert len(set(paths)) == 3 and paths[2].startswith(paths[1] + "#")  # two lambdas: not one path
    assert [registered_object(p) for p in paths] == [first, second, third]
    assert object_path(second) == paths[1]  # the same object keeps its path
