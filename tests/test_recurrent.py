"""The LSTM core: its state is reset exactly where an episode starts, the update's sequence replay reproduces what
acting computed (so no minibatch sequence runs across a reset), and what it refuses."""

import numpy as np
import pytest
import torch

from proxrl import PPO, ConfigError
from proxrl.fast.fused import FusedClipPPOGradient
from proxrl.fast.numpy_acting import NumpyActing

SMALL = dict(
    recurrent="lstm",
    lstm_hidden_size=8,
    hidden_sizes=(8,),
    num_envs=3,
    num_steps=16,
    num_minibatches=3,
    progress=False,
    tensorboard=False,
)


def test_episode_starts_are_the_first_valid_row_of_each_episode():
    # Counter-v0 ends every 3 steps; NEXT_STEP autoreset adds one invalid reset row after each end
    agent = PPO("toy_envs:proxrl_test/Counter-v0", **SMALL)
    agent.learn(48)
    b = agent.envs.rollout.batch
    valid, starts = b.valid[:, 0].tolist(), b.starts[:, 0].tolist()
    for t in range(16):
        previous_valid = valid[t - 1] if t > 0 else False  # the run's first rollout: row 0 starts every episode
        assert starts[t] == (valid[t] and not previous_valid), t
    assert starts[0] and sum(starts) >= 4  # 16 rows of 3-step episodes and their reset rows: 4 starts
    assert (b.starts & ~b.valid).sum() == 0


def test_replaying_a_rollout_from_its_initial_state_gives_the_logps_and_values_acting_saw():
    """The update replays each env's sequence through the LSTM from the state the rollout began with, resetting
    where an episode starts: it must reproduce acting's log π and V on every row. A replay that crossed a reset
    without resetting (or reset at the wrong row) would not."""
    agent = PPO("toy_envs:proxrl_test/Counter-v0", **SMALL)
    agent.learn(96)  # two rollouts and updates: the next rollout's initial state is not zero
    rollout = agent.envs.rollout
    agent.policy.eval()
    b = rollout.collect()  # acted by the current policy (no update after it)
    h0, c0 = rollout.initial_state
    assert h0.abs().sum() > 0
    with torch.no_grad():
        dist, values, _ = agent.policy.sequence(b.obs, (h0, c0), b.starts)
        logp = dist.log_prob(b.actions.reshape(-1)).reshape(16, 3)
    torch.testing.assert_close(logp, b.logp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(values.reshape(16, 3), b.values[:-1], atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the control: without the resets the replay differs after the first episode start
        no_resets = torch.zeros_like(b.starts)
        _, wrong, _ = agent.policy.sequence(b.obs, (h0, c0), no_resets)
    assert not torch.allclose(wrong.reshape(16, 3), b.values[:-1], atol=1e-4)


def test_a_reset_row_zeroes_the_state_before_acting():
    agent = PPO("toy_envs:proxrl_test/Counter-v0", **SMALL)
    policy = agent.policy
    x = torch.zeros(2, 1)
    state = (torch.ones(2, 8), torch.ones(2, 8))
    keep = torch.tensor([False, True])
    _, (h, _) = policy._core_step(policy._features(x), state, keep)
    _, (h_zero, _) = policy._core_step(policy._features(x[:1]), policy.initial_state(1), None)
    torch.testing.assert_close(h[:1], h_zero)  # env 0 restarted from zeros
    assert not torch.allclose(h[1:], h_zero)  # env 1 carried its state


def test_the_recurrent_update_trains_saves_loads_and_predicts_with_a_state(tmp_path):
    agent = PPO("CartPole-v1", **{**SMALL, "num_envs": 4, "num_minibatches": 2})
    assert not FusedClipPPOGradient.supports(agent.policy) and not NumpyActing.supports(agent.policy)
    before = [p.detach().clone() for p in agent.policy.core.parameters()]
    agent.learn(256)
    assert all(not torch.equal(a, b) for a, b in zip(before, agent.policy.core.parameters(), strict=True))
    loaded = PPO.load(agent.save(tmp_path / "m.pt"))
    obs = np.zeros(4, np.float32)
    action, state = loaded.predict(obs)
    assert action in (0, 1) and state[0].shape == (1, 8)
    again, state2 = loaded.predict(obs, state=state)
    assert not torch.equal(state2[0], state[0])  # the state is carried
    assert loaded.evaluate(2)["mean_length"] > 0


@pytest.mark.parametrize(
    "cls_kwargs, message",
    [
        (dict(num_minibatches=2), "must divide num_envs=3"),
        (dict(objective="kl"), "trains the clip objective only"),
        (dict(runners="ray", num_runners=3), "Ray runners do not carry the state"),
    ],
)
def test_what_the_recurrent_update_refuses(cls_kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PPO("CartPole-v1", **{**SMALL, **cls_kwargs})


def test_recurrent_is_ppos():
    from proxrl import PG

    with pytest.raises(ConfigError, match="recurrent=lstm is for PPO"):
        PG("CartPole-v1", recurrent="lstm", progress=False)


def test_the_recurrent_update_is_the_clipped_objective_on_replayed_sequences_by_hand():
    """One update redone from the equations: for each epoch a permutation of the envs (the trainer's torch draws),
    minibatches of whole env columns replayed through a copy of the policy from the rollout's initial state with
    resets at episode starts; on the valid rows Â normalised per minibatch, ρ = exp(log π − log π_old),
    L = −E[min(ρÂ, clip(ρ, 1 ± ε)Â)] + c_v · ½E[(V − R̂)²] − c · E[H]; plain Adam. The trainer must end at the same
    parameters."""
    import copy

    from proxrl.advantages import gae

    agent = PPO(
        "proxrl.envs.memory_tasks:CueMemory-v0",
        **{**SMALL, "num_envs": 4, "num_minibatches": 2},
        num_epochs=2,
        lr=0.01,
        anneal_lr=False,
        max_grad_norm=0.0,
        ent_coef=0.01,
        vf_coef=0.5,
        seed=0,
    )

    rollout = agent.rollout()
    agent.policy.eval()
    b = rollout.collect()
    adv = gae(b.rewards, b.values[:-1], b.next_values, b.terminated, b.truncated, gamma=0.99, gae_lambda=0.95)
    returns = adv + b.values[:-1]
    hand = copy.deepcopy(agent.policy)
    opt = torch.optim.Adam(hand.parameters(), lr=0.01, eps=agent.config.adam_eps)
    h0, c0 = rollout.initial_state
    rng = torch.get_rng_state()
    agent.policy.train()
    agent._update_recurrent(b, adv, returns, 0.2)

    torch.set_rng_state(rng)
    for _ in range(2):
        perm = torch.randperm(4)
        for start in (0, 2):
            e = perm[start : start + 2]
            valid = b.valid[:, e].reshape(-1)
            dist, values, _ = hand.sequence(b.obs[:, e], (h0[e], c0[e]), b.starts[:, e])
            logp = dist.log_prob(b.actions[:, e].reshape(-1))[valid]
            a = adv[:, e].reshape(-1)[valid]
            a = (a - a.mean()) / (a.std() + 1e-8)
            ratio = (logp - b.logp[:, e].reshape(-1)[valid]).exp()
            policy_loss = -torch.minimum(ratio * a, ratio.clamp(0.8, 1.2) * a).mean()
            critic = 0.5 * ((values[valid] - returns[:, e].reshape(-1)[valid]) ** 2).mean()
            loss = policy_loss + 0.5 * critic - 0.01 * dist.entropy()[valid].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    for (name, mine), theirs in zip(hand.named_parameters(), agent.policy.parameters(), strict=True):
        torch.testing.assert_close(theirs, mine, atol=2e-5, rtol=1e-4, msg=name)
