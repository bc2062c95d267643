"""Off-policy PG: V-trace against hand-worked cases, the replay memory, smoke and persistence."""

import math

import pytest
import torch

from proxrl import OffPolicyPG
from proxrl.advantages import discounted_returns, vtrace
from proxrl.replay import ReplayMemory

TINY = dict(num_envs=2, num_steps=16, tensorboard=False, hidden_sizes=(16,), replay_size=3, replay_ratio=2)


def _case():
    rewards = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    values = torch.tensor([[0.5], [1.0], [1.5], [2.0]])
    next_values = torch.tensor([[1.0], [1.5], [9.0], [3.0]])  # row 2 truncates: 9 is V(final obs)
    terminated = torch.zeros(4, 1, dtype=torch.bool)
    truncated = torch.tensor([[False], [False], [True], [False]])
    return rewards, values, next_values, terminated, truncated


def test_vtrace_on_policy_is_the_bootstrapped_monte_carlo_return():
    rewards, values, next_values, terminated, truncated = _case()
    v, q = vtrace(rewards, values, next_values, terminated, truncated, torch.zeros(4, 1), gamma=0.9)
    g = discounted_returns(rewards, terminated, truncated, gamma=0.9, next_values=next_values)
    torch.testing.assert_close(v, g)
    # Q̂ = r + γ v_{t+1}, with V(final obs) after the truncation and V(s_T) at the rollout's end
    torch.testing.assert_close(
        q, torch.tensor([[1 + 0.9 * g[1, 0]], [2 + 0.9 * g[2, 0]], [3 + 0.9 * 9.0], [4 + 0.9 * 3.0]])
    )


def test_vtrace_truncates_the_importance_weights_by_hand():
    rewards, values, next_values, terminated, truncated = _case()
    log_rhos = torch.log(torch.tensor([[2.0], [0.5], [1.0], [3.0]]))
    v, _ = vtrace(rewards, values, next_values, terminated, truncated, log_rhos, gamma=0.9, rho_bar=1.0, c_bar=1.0)
    rho = torch.tensor([1.0, 0.5, 1.0, 1.0])
    delta = rho * (rewards[:, 0] + 0.9 * next_values[:, 0] - values[:, 0])
    v3 = values[3, 0] + delta[3]
    v2 = values[2, 0] + delta[2]  # episode ends at row 2: no trace from row 3
    v1 = values[1, 0] + delta[1] + 0.9 * 0.5 * (v2 - values[2, 0])
    v0 = values[0, 0] + delta[0] + 0.9 * 1.0 * (v1 - values[1, 0])
    torch.testing.assert_close(v[:, 0], torch.stack([v0, v1, v2, v3]))


def test_replay_memory_keeps_the_newest_and_samples_them():
    memory = ReplayMemory(2, seed=0)
    for i in range(3):
        memory.add(i)  # type: ignore[arg-type]
    assert len(memory) == 2 and sorted(memory.items) == [1, 2]
    assert {memory.sample() for _ in range(50)} == {1, 2}


@pytest.mark.parametrize("kind", ["discrete", "box", "multidiscrete"])
def test_two_iterations_change_every_trainable_parameter(kind):
    agent = OffPolicyPG(f"proxrl_test/Target-{kind}-v0", **TINY)
    before = {k: v.clone() for k, v in agent.policy.named_parameters()}
    rows = []
    agent.learn(2 * 2 * 16, callback=lambda a, row: rows.append(row))
    for name, p in agent.policy.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"
    assert len(agent.replay) == 2 and all(0 < r["mean_weight"] <= 1.0 for r in rows)


def test_untruncated_weights_and_no_baseline_run_and_save(tmp_path):
    agent = OffPolicyPG("proxrl_test/Target-discrete-v0", max_weight=math.inf, baseline=False, **TINY)
    agent.learn(4 * 32)
    agent.save(tmp_path / "m.pt")
    loaded = OffPolicyPG.load(tmp_path / "m.pt")
    assert loaded.global_step == 128 and loaded.config.max_weight == math.inf
    loaded.learn(32)


def test_vtrace_truncates_rho_at_rho_bar_and_c_at_c_bar_by_hand():
    # ρ̄ = 1, c̄ = 0.5, π/β = [1.5, 0.8], γ = 0.9, no episode end in 2 steps:
    # ρ = [1, 0.8], c = [0.5, 0.5]; δ = ρ (r + γ V' − V) = [1.4, 2.96]; v_1 = 1 + 2.96, v_0 = 0.5 + 1.4 + .9·.5·2.96
    rewards, values, next_values = (
        torch.tensor([[1.0], [2.0]]),
        torch.tensor([[0.5], [1.0]]),
        torch.tensor([[1.0], [3.0]]),
    )
    never = torch.zeros(2, 1, dtype=torch.bool)
    log_rhos = torch.tensor([[1.5], [0.8]]).log()
    v, q = vtrace(rewards, values, next_values, never, never, log_rhos, gamma=0.9, rho_bar=1.0, c_bar=0.5)
    torch.testing.assert_close(v, torch.tensor([[3.232], [3.96]]), atol=1e-5, rtol=0)
    torch.testing.assert_close(q, torch.tensor([[1 + 0.9 * 3.96], [2 + 0.9 * 3.0]]), atol=1e-5, rtol=0)
