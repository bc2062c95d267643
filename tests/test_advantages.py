"""GAE, TD residual and returns against hand-worked numbers (DESIGN: unit tests)."""

import torch

from proxrl.advantages import discounted_returns, gae, normalize, td_residual

T = torch.tensor


def example():
    # t=0 plain step; t=1 truncated (V of the real final obs = 10); t=2 terminated; t=3 rollout end.
    rewards = T([[1.0], [2.0], [3.0], [4.0]])
    values = T([[0.5], [1.0], [1.5], [2.0]])
    next_values = T([[1.0], [10.0], [2.0], [3.0]])
    terminated = T([[False], [False], [True], [False]])
    truncated = T([[False], [True], [False], [False]])
    return rewards, values, next_values, terminated, truncated


def test_td_residual_hand_example_bootstraps_on_truncation_not_termination():
    r, v, nv, term, _ = example()
    delta = td_residual(r, v, nv, term, gamma=0.9)
    # δ0 = 1 + .9·1 − .5; δ1 = 2 + .9·10 − 1; δ2 = 3 + 0 − 1.5 (terminated); δ3 = 4 + .9·3 − 2
    torch.testing.assert_close(delta, T([[1.4], [10.0], [1.5], [4.7]]), atol=1e-6, rtol=0)


def test_gae_hand_example_with_one_termination_and_one_truncation():
    adv = gae(*example(), gamma=0.9, gae_lambda=0.8)
    # Â3 = δ3; Â2 = δ2 (episode ended); Â1 = δ1 (truncated: cut); Â0 = δ0 + γλ·Â1 = 1.4 + 0.72·10
    torch.testing.assert_close(adv, T([[8.6], [10.0], [1.5], [4.7]]), atol=1e-6, rtol=0)


def test_gae_lambda_zero_is_td_residual():
    r, v, nv, term, trunc = (x.repeat(1, 3) for x in example())
    torch.testing.assert_close(
        gae(r, v, nv, term, trunc, gamma=0.95, gae_lambda=0.0),
        td_residual(r, v, nv, term, gamma=0.95),
        atol=1e-6,
        rtol=0,
    )


def test_gae_gamma_lambda_one_is_return_minus_value():
    g = torch.Generator().manual_seed(0)
    r, v, final_v = (torch.randn(7, 3, generator=g) for _ in range(3))
    term = torch.rand(7, 3, generator=g) < 0.2
    trunc = (torch.rand(7, 3, generator=g) < 0.2) & ~term
    # within an episode V(s_{t+1}) is the next row's V(s); after an end it is V(final obs)
    nv = torch.where(term | trunc, final_v, torch.cat([v[1:], final_v[-1:]]))
    adv = gae(r, v, nv, term, trunc, gamma=1.0, gae_lambda=1.0)
    g = discounted_returns(r, term, trunc, gamma=1.0, next_values=nv)
    torch.testing.assert_close(adv, g - v, atol=1e-5, rtol=0)


def test_gae_split_at_episode_end_changes_nothing():
    r, v, nv, term, trunc = example()
    full = gae(r, v, nv, term, trunc, gamma=0.9, gae_lambda=0.8)
    parts = [
        gae(r[a:b], v[a:b], nv[a:b], term[a:b], trunc[a:b], gamma=0.9, gae_lambda=0.8) for a, b in ((0, 2), (2, 4))
    ]
    torch.testing.assert_close(torch.cat(parts), full, atol=0, rtol=0)


def test_discounted_returns_hand_example():
    r, _, nv, term, trunc = example()
    plain = discounted_returns(r, term, trunc, gamma=0.5)
    torch.testing.assert_close(plain, T([[2.0], [2.0], [3.0], [4.0]]), atol=1e-6, rtol=0)
    boot = discounted_returns(r, term, trunc, gamma=0.5, next_values=nv)
    # G1 = 2 + .5·10 (truncated: bootstrap), G0 = 1 + .5·7, G2 = 3 (terminated), G3 = 4 + .5·3 (rollout end)
    torch.testing.assert_close(boot, T([[4.5], [7.0], [3.0], [5.5]]), atol=1e-6, rtol=0)


def test_normalize_masked_entries_have_zero_mean_unit_std():
    x = torch.tensor([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([True, True, True, False])
    y = normalize(x, mask)
    assert abs(float(y[mask].mean())) < 1e-6
    assert abs(float(y[mask].std()) - 1.0) < 1e-6


def test_discounted_returns_terminated_on_the_last_allowed_step_is_not_bootstrapped():
    # gymnasium's TimeLimit sets terminated and truncated together when the episode ends on its last allowed
    # step: the true target is the reward alone, whatever the critic says of the final state (V = 100)
    rewards, both = T([[1.0]]), T([[True]])
    next_values = T([[100.0]])
    g = discounted_returns(rewards, both, both, gamma=0.9, next_values=next_values)
    torch.testing.assert_close(g, T([[1.0]]), atol=0, rtol=0)
    # the other estimators agree: GAE with V(s) = 0 gives Â = δ = r
    adv = gae(rewards, T([[0.0]]), next_values, both, both, gamma=0.9, gae_lambda=0.95)
    torch.testing.assert_close(adv, T([[1.0]]), atol=0, rtol=0)


def test_discounted_returns_discount_each_step_once_by_gamma():
    # three-step episode, γ = 0.9: G2 = 4, G1 = 2 + .9·4 = 5.6, G0 = 1 + .9·5.6 = 6.04 (γ per step, not γ²)
    rewards = T([[1.0], [2.0], [4.0]])
    term = T([[False], [False], [True]])
    g = discounted_returns(rewards, term, torch.zeros_like(term), gamma=0.9)
    torch.testing.assert_close(g, T([[6.04], [5.6], [4.0]]), atol=1e-6, rtol=0)


def test_pg_return_minus_value_critic_target_ignores_the_critic_after_a_termination():
    # the PG trainer's estimator on a one-step episode that terminates on its last allowed step, critic V = 100
    from proxrl.algos.pg import estimate_advantages
    from proxrl.rollout import Batch

    one = torch.ones(1, 1, dtype=torch.bool)
    batch = Batch(
        obs=torch.zeros(1, 1, 1),
        actions=torch.zeros(1, 1, dtype=torch.long),
        logp=torch.zeros(1, 1),
        values=torch.full((2, 1), 100.0),
        rewards=T([[1.0]]),
        terminated=one,
        truncated=one,
        valid=one,
        starts=one,
    )
    for advantage in ("return_minus_value", "gae", "td"):
        adv, target = estimate_advantages(advantage, batch, 0.99, 0.95)
        torch.testing.assert_close(target, T([[1.0]]), atol=0, rtol=0, msg=advantage)
        torch.testing.assert_close(adv, T([[-99.0]]), atol=0, rtol=0, msg=advantage)
