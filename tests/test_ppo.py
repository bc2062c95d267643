"""PPO smoke, persistence and equivalence tests on tiny environments."""

import numpy as np
import pytest
import torch

from proxrl import PPO, CheckpointError, ConfigError, checkpoint
from proxrl.errors import NonFiniteError


@pytest.mark.parametrize("kind", ["discrete", "box", "multidiscrete"])
@pytest.mark.parametrize("shared", [False, True])
def test_two_iterations_change_every_trainable_parameter(kind, shared, tiny_ppo):
    agent = PPO(f"proxrl_test/Target-{kind}-v0", shared_trunk=shared, **tiny_ppo)
    before = {k: v.clone() for k, v in agent.policy.named_parameters()}
    agent.learn(2 * 2 * 16)
    assert agent.progress.iteration == 2
    for name, p in agent.policy.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"


def test_ppo_improves_on_a_trivial_task(tiny_ppo):
    agent = PPO("proxrl_test/Target-discrete-v0", seed=0, **{**tiny_ppo, "num_epochs": 4})
    before = agent.evaluate(5, deterministic=False)["mean_return"]
    agent.learn(4000)
    after = agent.evaluate(5)["mean_return"]
    assert after > before and after >= 9.0  # 10 steps, reward 1 for the right action


def test_save_load_round_trip_and_learning_continues(tmp_path, tiny_ppo):
    agent = PPO("proxrl_test/Target-box-v0", seed=3, **tiny_ppo).learn(64)
    path = agent.save(tmp_path / "a.pt")
    loaded = PPO.load(path)
    obs = np.random.default_rng(0).uniform(-1, 1, (5, 3)).astype(np.float32)
    np.testing.assert_array_equal(agent.predict(obs), loaded.predict(obs))
    for (k, a), (_, b) in zip(agent.policy.state_dict().items(), loaded.policy.state_dict().items(), strict=False):
        assert torch.equal(a, b), k
    assert loaded.global_step == 64 and loaded.config == agent.config
    loaded.learn(64)
    assert loaded.global_step == 128


def test_checkpoint_refuses_other_algorithms_and_malicious_pickles(tmp_path, tiny_ppo):
    agent = PPO("proxrl_test/Target-discrete-v0", **tiny_ppo)
    state = agent.state_dict()
    state["algo"] = "happo"
    checkpoint.atomic_save(state, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="'happo' checkpoint, not 'ppo'"):
        PPO.load(tmp_path / "other.pt")

    class Evil:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / "pwned"),))

    torch.save({"format_version": 1, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="would rebuild, which proxrl refuses"):
        PPO.load(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(CheckpointError, match="does not exist"):
        PPO.load(tmp_path / "missing.pt")
    for version, message in ((checkpoint.FORMAT_VERSION + 1, "upgrade proxrl"), (1, "written by an older proxrl")):
        state = agent.state_dict()
        state["format_version"] = version
        checkpoint.atomic_save(state, tmp_path / "version.pt")
        with pytest.raises(CheckpointError, match=message):
            PPO.load(tmp_path / "version.pt")
    # versions 2 and 3 held the one Adam's state itself; version 4 names it by network ({"policy": …})
    agent.learn(32)  # an Adam state to carry over
    for version in (2, 3):
        state = agent.state_dict()
        state["optimizer"] = state["optimizer"]["policy"]
        state["format_version"] = version
        checkpoint.atomic_save(state, tmp_path / "version.pt")
        loaded = PPO.load(tmp_path / "version.pt")
        assert loaded.global_step == agent.global_step
        torch.testing.assert_close(loaded.optimizers["policy"].state_dict(), agent.optimizers["policy"].state_dict())


def test_periodic_checkpoints_keep_the_last_k(tmp_path, tiny_ppo):
    agent = PPO(
        "proxrl_test/Target-discrete-v0",
        run_dir=tmp_path,
        checkpoint_every=1,
        keep_checkpoints=2,
        progress=False,
        **tiny_ppo,
    )
    agent.learn(5 * 32)
    kept = checkpoint.list_checkpoints(tmp_path / "checkpoints")
    assert [p.name for p in kept] == ["ckpt_000000000128.pt", "ckpt_000000000160.pt"]
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "config.yaml").is_file()
    assert not list(tmp_path.glob("checkpoints/*.tmp"))
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for col in ("global_step", "episodes", "mean_return", "policy_loss", "value_loss", "approx_kl", "clip_frac", "sps"):
        assert col in header


def test_nan_observation_stops_with_a_clear_error(tiny_ppo):
    import gymnasium as gym

    gym.register("proxrl_test/NaN-v0", entry_point="toy_envs:CounterEnv", kwargs={"nan_at": 3}, max_episode_steps=50)
    with pytest.raises(NonFiniteError, match="non-finite observation at rollout step"):
        PPO("proxrl_test/NaN-v0", **tiny_ppo).learn(64)


def test_unknown_env_and_bad_env_kwargs_are_config_errors():
    with pytest.raises(ConfigError, match="unknown environment id 'NoSuchEnv-v0'"):
        PPO("NoSuchEnv-v0")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module'"):
        PPO("no_such_module:Foo-v0")


def test_module_colon_env_id_imports_the_module():
    agent = PPO("toy_envs:proxrl_test/Counter-v0", num_envs=1, num_steps=4, num_minibatches=1, tensorboard=False)
    agent.learn(4)
    assert agent.global_step == 4


def test_target_kl_stops_epochs_early(tiny_ppo):
    agent = PPO("proxrl_test/Target-discrete-v0", target_kl=1e-9, lr=1e-2, **{**tiny_ppo, "num_epochs": 10})
    adv = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    stats = agent._update(agent.start_envs().collect(), adv, torch.ones(16, 2), 0.2)
    assert stats["epochs"] == 1


def test_same_seed_gives_identical_training_on_cpu(tiny_ppo):
    runs = [PPO("proxrl_test/Target-box-v0", seed=5, **tiny_ppo).learn(96) for _ in range(2)]
    for (k, a), (_, b) in zip(runs[0].policy.state_dict().items(), runs[1].policy.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    other = PPO("proxrl_test/Target-box-v0", seed=6, **tiny_ppo).learn(96)
    assert not torch.equal(other.policy.log_std, runs[0].policy.log_std)


def test_async_vector_env_runs(tiny_ppo):
    agent = PPO("CartPole-v1", vectorization="async", **tiny_ppo).learn(64)
    assert agent.global_step == 64


def test_observation_normalisation_statistics_are_saved_and_used_at_eval(tmp_path, tiny_ppo):
    agent = PPO("Pendulum-v1", norm_obs=True, norm_reward=True, **tiny_ppo).learn(64)
    stats = agent.state_dict()["normalizers"]
    assert set(stats) == {"obs", "reward"} and stats["obs"]["count"] > 64
    loaded = PPO.load(agent.save(tmp_path / "n.pt"))
    assert loaded.envs.saved_normalizers["obs"] == stats["obs"]
    a, b = agent.evaluate(2), loaded.evaluate(2)
    assert a["returns"] == b["returns"]  # same weights, same frozen statistics, same seeds


def test_orthogonal_init_gains():
    from gymnasium import spaces

    from proxrl.policies import ActorCritic

    p = ActorCritic(spaces.Box(-1, 1, (8,), np.float32), spaces.Discrete(3), (64, 64))
    w = p.actor_trunk[2].weight  # 64×64 hidden layer, gain √2
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(64), atol=1e-4, rtol=0)
    head = p.actor_head[0].weight  # 3×64, gain 0.01: rows orthogonal with norm 0.01
    torch.testing.assert_close(head @ head.T, 1e-4 * torch.eye(3), atol=1e-8, rtol=0)


def test_cuda_request_without_gpu_is_a_config_error():
    from proxrl.devices import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda", 10)
    assert resolve_device("auto", 10_000_000).type == "cpu"


@pytest.mark.parametrize("objective", ["kl", "adaptive_kl", "clip_kl"])
@pytest.mark.parametrize("kind", ["discrete", "box"])
def test_kl_objectives_train_every_parameter_and_log_the_exact_kl(objective, kind, tiny_ppo):
    agent = PPO(f"proxrl_test/Target-{kind}-v0", objective=objective, kl_coef=0.5, **tiny_ppo)
    before = {k: v.clone() for k, v in agent.policy.named_parameters()}
    rows = []
    agent.learn(2 * 2 * 16, callback=lambda a, row: rows.append(row))
    for name, p in agent.policy.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"
    assert all(row["kl"] >= 0 and row["kl_coef"] > 0 for row in rows)


def test_exact_kl_is_zero_before_the_first_step_so_pi_old_is_the_collecting_policy():
    agent = PPO(
        "proxrl_test/Target-box-v0",
        objective="kl",
        num_envs=2,
        num_steps=16,
        num_epochs=1,
        num_minibatches=1,
        tensorboard=False,
        hidden_sizes=(16,),
    )
    rows = []
    agent.learn(32, callback=lambda a, row: rows.append(row))
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # one minibatch, measured before its step


def test_adaptive_kl_moves_the_coefficient_and_resumes_with_it(tmp_path, tiny_ppo):
    agent = PPO(
        "proxrl_test/Target-discrete-v0",
        objective="adaptive_kl",
        kl_coef=1.0,
        kl_target=1e-9,
        **{**tiny_ppo, "num_epochs": 4},
    )
    agent.learn(2 * 32)
    assert agent.kl_coef == 4.0  # the reached KL exceeds 1.5 × a tiny target twice: c doubles each iteration
    agent.save(tmp_path / "m.pt")
    assert PPO.load(tmp_path / "m.pt").kl_coef == 4.0
