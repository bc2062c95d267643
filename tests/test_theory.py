"""The library's policy-gradient estimators against the exact ∇J(θ) of small tabular MDPs (proxrl.theory).

Every sampled gradient here goes through the functions the trainers call: ``estimate_advantages`` (the PG
trainer's G and G − V), ``importance_weight`` and ``pg_loss``, and the policy's own ``log_prob``. pg_loss averages
over samples; the seed's estimators sum over an episode's steps, so the sampled gradient is −∇loss × samples /
episodes.
"""

import numpy as np
import pytest
import torch

from proxrl import theory
from proxrl.algos.pg import estimate_advantages
from proxrl.objectives import importance_weight, pg_loss


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def sampled_gradient(policy, batch, adv, weight=None) -> torch.Tensor:
    """−∇ pg_loss × samples / episodes: the per-episode-sum estimator Σ_t w_t Â_t ∇ln π(a_t|s_t), averaged."""
    valid = batch.valid
    logp = policy.distribution(batch.obs[valid]).log_prob(batch.actions[valid])
    loss, _ = pg_loss(logp, adv[valid], None if weight is None else weight[valid])
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, theory.actor_parameters(policy))]).double()
    return -grad * int(valid.sum()) / valid.shape[1]


def with_critic(batch, v: torch.Tensor):
    """The batch with values = the exact V^π(s_t) on valid steps (a perfect critic as the baseline)."""
    values = torch.zeros_like(batch.values)
    values[:-1] = torch.where(batch.valid, v.float()[batch.obs], 0.0)
    batch.values = values
    return batch


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_policy_gradient_theorem_equals_autograd_through_the_bellman_solve(seed, gamma):
    mdp = theory.random_mdp(5, 3, gamma=gamma, seed=seed)
    policy = theory.tabular_policy(mdp, seed=seed)
    exact = theory.exact_gradient(mdp, policy)
    theorem = theory.pg_theorem_gradient(mdp, policy)
    torch.testing.assert_close(theorem, exact, rtol=1e-4, atol=1e-6)  # float32 policy, float64 MDP algebra
    assert exact.norm() > 1e-3


def test_sampled_returns_average_to_j():
    mdp = theory.random_mdp(seed=0)
    policy = theory.tabular_policy(mdp)
    pi = theory.policy_table(policy, mdp.n_states).detach()
    batch = theory.sample_episodes(mdp, pi, 40_000, np.random.default_rng(0))
    g, _ = estimate_advantages("return", batch, mdp.gamma, 1.0)
    sampled_j = g[0].double().mean()  # G_0 of every episode
    stderr = g[0].double().std() / 40_000**0.5
    assert abs(sampled_j - theory.objective(mdp, pi)) < 4 * stderr


def test_reinforce_estimate_converges_to_the_exact_gradient():
    # 40,000 episodes (~5 steps each): the Monte-Carlo error of the mean is ~1–3 % of |∇J| on this MDP
    mdp = theory.random_mdp(seed=0)
    policy = theory.tabular_policy(mdp)
    pi = theory.policy_table(policy, mdp.n_states).detach()
    exact = theory.exact_gradient(mdp, policy)
    batch = theory.sample_episodes(mdp, pi, 40_000, np.random.default_rng(1))
    g, _ = estimate_advantages("return", batch, mdp.gamma, 1.0)
    estimate = sampled_gradient(policy, batch, g)
    print(f"REINFORCE, 40,000 episodes: cosine {_cos(estimate, exact):.4f}, relative error {_rel(estimate, exact):.3f}")
    assert _cos(estimate, exact) >= 0.99
    assert _rel(estimate, exact) <= 0.08


def _chain_returns(seed: int):
    """40,000 episodes of the delayed-reward chain (γ = 0.9) and the returns G the trainer computes for them."""
    mdp = theory.delayed_reward_chain(gamma=0.9)
    policy = theory.tabular_policy(mdp, scale=0.5)
    pi = theory.policy_table(policy, mdp.n_states).detach()
    batch = theory.sample_episodes(mdp, pi, 40_000, np.random.default_rng(seed))
    g, _ = estimate_advantages("return", batch, mdp.gamma, 1.0)
    return mdp, policy, batch, g


def test_reinforce_with_gamma_t_weights_converges_to_the_exact_discounted_gradient():
    # ∇J_γ = E[Σ_t γ^t G_t ∇ln π(a_t|s_t)] with G_t = Σ_k γ^k r_{t+k}: the discounted return's exact gradient
    mdp, policy, batch, g = _chain_returns(seed=5)
    exact = theory.exact_gradient(mdp, policy)
    step_weight = mdp.gamma ** torch.arange(g.shape[0], dtype=torch.float32)[:, None]  # column = one episode
    estimate = sampled_gradient(policy, batch, g * step_weight)
    print(
        f"γ = 0.9, Σ γ^t G_t ∇ln π, 40,000 episodes: cosine {_cos(estimate, exact):.4f}, relative error "
        f"{_rel(estimate, exact):.3f}"
    )
    assert _cos(estimate, exact) >= 0.99
    assert _rel(estimate, exact) <= 0.08
    # the bound tells γ from γ² per step: on this chain the reward is γ^k away, and returns discounted by
    # γ² = 0.81 would move the estimate's mean 24 % away
    assert _rel(theory.exact_gradient(theory.delayed_reward_chain(gamma=0.81), policy), exact) > 0.15


def test_reinforce_as_implemented_weights_every_step_alike_with_gamma_below_one():
    # proxrl's REINFORCE (like SB3's and CleanRL's PG losses) uses Σ_t G_t ∇ln π without γ^t (docs/reinforce.md):
    # its expectation is Σ_s η_1(s) Σ_a Q_γ(s,a) ∇π(a|s) with undiscounted visits, not ∇J_γ
    mdp, policy, batch, g = _chain_returns(seed=6)
    expected = theory.reinforce_expectation(mdp, policy)
    estimate = sampled_gradient(policy, batch, g)
    exact = theory.exact_gradient(mdp, policy)
    print(
        f"γ = 0.9, Σ G_t ∇ln π: relative error {_rel(estimate, expected):.3f} to Σ η_1 Q_γ ∇π, "
        f"{_rel(estimate, exact):.3f} to ∇J_γ"
    )
    assert _cos(estimate, expected) >= 0.99
    assert _rel(estimate, expected) <= 0.08
    assert _rel(expected, exact) > 0.2  # the convention matters on this MDP
    # returns discounted by γ² would move its mean 29 % away on this chain
    assert _rel(theory.reinforce_expectation(theory.delayed_reward_chain(gamma=0.81), policy), expected) > 0.15
    # with γ = 1 the two are the same gradient
    undiscounted = theory.delayed_reward_chain(gamma=1.0)
    torch.testing.assert_close(
        theory.reinforce_expectation(undiscounted, policy),
        theory.exact_gradient(undiscounted, policy),
        rtol=1e-4,
        atol=1e-6,
    )


def test_state_baseline_keeps_the_mean_and_reduces_the_variance():
    # positive rewards (as CartPole's): G carries a large state-dependent offset that V(s) removes
    mdp = theory.random_mdp(seed=2, reward_range=(1.0, 3.0))
    policy = theory.tabular_policy(mdp, seed=2)
    pi = theory.policy_table(policy, mdp.n_states).detach()
    exact = theory.exact_gradient(mdp, policy)
    v = theory.values(mdp, pi)[0]
    rng = np.random.default_rng(3)
    plain, baseline = [], []
    for _ in range(100):  # 100 independent estimates from 400 episodes each
        batch = with_critic(theory.sample_episodes(mdp, pi, 400, rng), v)
        g, _ = estimate_advantages("return", batch, mdp.gamma, 1.0)
        g_minus_v, _ = estimate_advantages("return_minus_value", batch, mdp.gamma, 1.0)
        plain.append(sampled_gradient(policy, batch, g))
        baseline.append(sampled_gradient(policy, batch, g_minus_v))
    plain_t, base_t = torch.stack(plain), torch.stack(baseline)
    var_plain = ((plain_t - exact) ** 2).sum(1).mean()
    var_base = ((base_t - exact) ** 2).sum(1).mean()
    # unbiased: the mean of the 100 estimates misses ∇J by no more than its own noise allows (E‖err‖² = var/100)
    for estimates, var in ((plain_t, var_plain), (base_t, var_base)):
        assert ((estimates.mean(0) - exact) ** 2).sum() <= 3 * var / 100
        assert _cos(estimates.mean(0), exact) >= 0.98
    print(
        f"mean squared error of one 400-episode estimate: G {var_plain:.4g}, G − V(s) {var_base:.4g} "
        f"(ratio {var_base / var_plain:.2f})"
    )
    assert var_base < 0.6 * var_plain


def test_importance_weighted_estimate_matches_the_seeds_offpolicy_gradient():
    mdp = theory.random_mdp(seed=0)
    policy = theory.tabular_policy(mdp)
    pi = theory.policy_table(policy, mdp.n_states).detach()
    beta = theory.policy_table(theory.tabular_policy(mdp, seed=7), mdp.n_states).detach()
    assert (pi - beta).abs().max() > 0.1
    q = theory.values(mdp, pi)[1]
    batch = theory.sample_episodes(mdp, beta, 40_000, np.random.default_rng(4))
    logp = policy.distribution(batch.obs.reshape(-1)).log_prob(batch.actions.reshape(-1)).reshape(batch.obs.shape)
    weight = importance_weight(logp, batch.logp)  # π/β, untruncated
    q_sa = q.float()[batch.obs, batch.actions]
    estimate = sampled_gradient(policy, batch, q_sa, weight)
    seed_expression = theory.offpolicy_gradient(mdp, policy, beta)
    print(
        f"π/β-weighted, 40,000 episodes from β: cosine {_cos(estimate, seed_expression):.4f}, relative error "
        f"{_rel(estimate, seed_expression):.3f} to the seed's expression"
    )
    assert _cos(estimate, seed_expression) >= 0.99
    assert _rel(estimate, seed_expression) <= 0.08
    # The seed drops π ∇Q^π and weights states by d^β: how far that is from the true gradient on this MDP
    exact = theory.exact_gradient(mdp, policy)
    print(
        f"seed's off-policy gradient vs exact ∇J: cosine {_cos(seed_expression, exact):.3f}, "
        f"relative difference {_rel(seed_expression, exact):.3f}"
    )
    assert _rel(seed_expression, exact) > 0.01
    # with β = π the seed's expression is Theorem 1 exactly
    torch.testing.assert_close(theory.offpolicy_gradient(mdp, policy, pi), exact, rtol=1e-4, atol=1e-6)


def test_truncating_the_importance_weight_bounds_it():
    logp, behaviour = torch.tensor([0.0, -3.0]), torch.tensor([-2.0, -1.0])
    torch.testing.assert_close(importance_weight(logp, behaviour, 1.0), torch.tensor([1.0, float(np.exp(-2.0))]))
