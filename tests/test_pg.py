"""PG / REINFORCE: advantage estimators wired to the shared equations, episodic collection, smoke, equivalences."""

import numpy as np
import pytest
import torch

from proxrl import PG, PPO, REINFORCE, ConfigError
from proxrl.advantages import gae
from proxrl.algos.pg import ADVANTAGES, estimate_advantages
from proxrl.cli import main

TINY = dict(num_envs=2, num_steps=16, tensorboard=False, hidden_sizes=(16,))


@pytest.mark.parametrize("advantage", ADVANTAGES)
@pytest.mark.parametrize("kind", ["discrete", "box", "multidiscrete"])
def test_two_iterations_change_every_trainable_parameter(advantage, kind):
    agent = PG(f"proxrl_test/Target-{kind}-v0", advantage=advantage, **TINY)
    before = {k: v.clone() for k, v in agent.policy.named_parameters()}
    agent.learn(2 * 2 * 16)
    assert agent.progress.iteration >= 2
    for name, p in agent.policy.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"


def test_td_is_gae_with_lambda_0_and_return_minus_value_is_gae_with_lambda_1():
    agent = PG("proxrl_test/Counter-v0", advantage="gae", **TINY)  # Counter truncates: bootstraps matter
    batch = agent.start_envs().collect()
    args = (batch.rewards, batch.values[:-1], batch.next_values, batch.terminated, batch.truncated)
    td, td_target = estimate_advantages("td", batch, 0.9, 0.5)
    torch.testing.assert_close(td, gae(*args, gamma=0.9, gae_lambda=0.0))
    torch.testing.assert_close(td_target, td + batch.values[:-1])
    g_minus_v, g = estimate_advantages("return_minus_value", batch, 0.9, 0.5)
    torch.testing.assert_close(g_minus_v, gae(*args, gamma=0.9, gae_lambda=1.0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, g_minus_v + batch.values[:-1])


def test_episodic_collection_plays_exactly_one_complete_episode_per_env():
    agent = REINFORCE("proxrl_test/CounterTerm-v0", num_envs=3, num_steps=64, tensorboard=False)
    rollout = agent.start_envs()
    batch = rollout.collect(episodic=True)
    valid = batch.valid.numpy()
    done = (batch.terminated | batch.truncated).numpy()
    for i in range(3):
        steps = np.flatnonzero(valid[:, i])
        assert steps[0] == 0 and np.all(np.diff(steps) == 1), "one contiguous episode from the reset"
        assert done[steps[-1], i], "the episode is complete: its last valid step ends it"
        assert done[steps, i].sum() == 1
    returns, lengths = rollout.episodes.drain()
    assert sorted(lengths) == sorted(int(valid[:, i].sum()) for i in range(3))
    assert rollout.steps_taken == 3 * (int(np.flatnonzero(valid.any(axis=1))[-1]) + 1)


def test_reinforce_returns_are_monte_carlo_returns_of_the_episode():
    agent = REINFORCE("proxrl_test/CounterTerm-v0", num_envs=2, num_steps=64, gamma=0.9, tensorboard=False)
    batch = agent.start_envs().collect(episodic=True)
    adv, _ = estimate_advantages("return", batch, 0.9, 0.95)
    for i in range(2):
        steps = np.flatnonzero(batch.valid[:, i].numpy())
        rewards = batch.rewards[steps, i].numpy()
        expected = [sum(0.9**k * r for k, r in enumerate(rewards[t:])) for t in range(len(rewards))]
        np.testing.assert_allclose(adv[steps, i].numpy(), expected, rtol=1e-5)


def test_ppo_with_one_epoch_one_minibatch_and_no_clipping_is_a_pg_step():
    common = dict(
        num_envs=2,
        num_steps=16,
        tensorboard=False,
        hidden_sizes=(16,),
        seed=3,
        lr=1e-2,
        gamma=0.9,
        gae_lambda=0.8,
        anneal_lr=False,
        ent_coef=0.01,
    )
    pg = PG("proxrl_test/Target-box-v0", advantage="gae", **common).learn(32)
    ppo = PPO("proxrl_test/Target-box-v0", num_epochs=1, num_minibatches=1, clip_eps=1e9, **common).learn(32)
    for (name, a), b in zip(pg.policy.named_parameters(), ppo.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_reinforce_refuses_another_advantage_and_the_cli_alias_works(tmp_path, capsys):
    with pytest.raises(ConfigError, match="advantage=return"):
        REINFORCE("CartPole-v1", advantage="gae")
    assert (
        main(
            [
                "train",
                "reinforce",
                "--env",
                "proxrl_test/CounterTerm-v0",
                "--total-steps",
                "64",
                "--set",
                "num_steps=32",
                "--set",
                "num_envs=2",
                "--run-dir",
                str(tmp_path / "r"),
                "--quiet",
            ]
        )
        == 0
    )
    assert "advantage: return" in (tmp_path / "r" / "config.yaml").read_text()
    assert main(["train", "reinforce", "--set", "advantage=td"]) == 2
    assert "reinforce means advantage=return" in capsys.readouterr().err
    assert main(["train", "reinforce", "--resume", str(tmp_path / "r"), "--total-steps", "64", "--quiet"]) == 0
