"""Clipped surrogate closed forms and zero gradients where clipped; value loss; entropy; k1/k3 estimators."""

import math

import pytest
import torch

from proxrl import kl
from proxrl.distributions import Categorical
from proxrl.objectives import clipped_surrogate, entropy_bonus, kl_penalty, kl_surrogate, pg_loss, value_loss

EPS = 0.2
# (ratio, advantage, expected per-sample objective min(ρA, clip(ρ)A), gradient is zero)
CASES = [
    (0.5, +2.0, 1.0, False),  # below 1−ε, Â > 0: unclipped branch is the min
    (0.5, -2.0, -1.6, True),  # below 1−ε, Â < 0: clipped (0.8·−2)
    (1.1, +2.0, 2.2, False),  # inside: both branches agree
    (1.1, -2.0, -2.2, False),
    (1.5, +2.0, 2.4, True),  # above 1+ε, Â > 0: clipped (1.2·2)
    (1.5, -2.0, -3.0, False),  # above 1+ε, Â < 0: unclipped
]


@pytest.mark.parametrize("ratio,adv,objective,zero_grad", CASES)
def test_clipped_surrogate_closed_form_and_gradient(ratio, adv, objective, zero_grad):
    logp = torch.tensor([math.log(ratio)], requires_grad=True)
    loss, stats = clipped_surrogate(logp, torch.zeros(1), torch.tensor([adv]), EPS)
    assert loss.item() == pytest.approx(-objective, abs=1e-6)
    loss.backward()
    expected_grad = 0.0 if zero_grad else -ratio * adv  # d(−ρA)/d log π = −ρA
    assert logp.grad.item() == pytest.approx(expected_grad, abs=1e-6)
    assert stats["clip_frac"].item() == (1.0 if zero_grad else 0.0)  # clipped = gives no gradient


def test_one_clip_frac_definition_for_ppo_the_fused_path_and_grpo():
    # ratios [1.5, 0.5] with Â [−1, +1]: the min keeps both unclipped terms (both give a gradient): 0 clipped;
    # with Â [+1, −1] both are held by the clip: 1 clipped, half on each side
    from proxrl.objectives import GRPOBatch, clip_fractions, make_grpo_loss

    logp = torch.tensor([1.5, 0.5]).log()
    for adv, expected in (([-1.0, 1.0], (0.0, 0.0)), ([1.0, -1.0], (0.5, 0.5))):
        a = torch.tensor(adv)
        low, high = clip_fractions(logp.exp(), a, EPS, EPS)
        assert (low.item(), high.item()) == expected
        _, ppo = clipped_surrogate(logp, torch.zeros(2), a, EPS)
        batch = GRPOBatch(logp[:, None], torch.zeros(2, 1), a[:, None], torch.ones(2, 1))
        _, grpo = make_grpo_loss("grpo", clip_low=EPS, clip_high=EPS)(batch)
        assert ppo["clip_frac"].item() == grpo["clip_frac"].item() == sum(expected)
        assert (grpo["clip_frac_low"].item(), grpo["clip_frac_high"].item()) == expected


def test_clipped_surrogate_mean_over_batch_and_no_grad_in_stats():
    ratios = torch.tensor([c[0] for c in CASES])
    logp = ratios.log().requires_grad_()
    loss, stats = clipped_surrogate(logp, torch.zeros(len(CASES)), torch.tensor([c[1] for c in CASES]), EPS)
    assert loss.item() == pytest.approx(-sum(c[2] for c in CASES) / len(CASES), abs=1e-6)
    assert all(not v.requires_grad for v in stats.values())


def test_value_loss_plain_and_clipped():
    v, ret, old = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    loss, _ = value_loss(v, ret)
    assert loss.item() == pytest.approx(0.5 * (1.0 + 9.0) / 2)
    # clipped: V1 stays 1 (inside ±.5): err 1; V2 = 3 clipped to 1.5: max(9, 2.25) = 9
    loss_c, _ = value_loss(v, ret, old, clip_eps=0.5)
    assert loss_c.item() == pytest.approx(0.5 * (1.0 + 9.0) / 2)
    v2 = torch.tensor([3.0], requires_grad=True)
    loss2, _ = value_loss(v2, torch.tensor([4.0]), torch.tensor([1.0]), clip_eps=0.5)
    # unclipped err 1, clipped V=1.5: err 6.25 → max picks the clipped branch; its gradient wrt V is 0
    assert loss2.item() == pytest.approx(0.5 * 6.25)
    loss2.backward()
    assert v2.grad.item() == 0.0


def test_entropy_bonus_is_negative_mean_entropy():
    loss, stats = entropy_bonus(torch.tensor([0.5, 1.5]))
    assert loss.item() == -1.0 and stats["entropy"].item() == 1.0


def test_k3_nonnegative_zero_at_equal_and_unbiased_for_kl():
    g = torch.Generator().manual_seed(0)
    p = Categorical(torch.randn(1, 5, generator=g))
    q = Categorical(torch.randn(1, 5, generator=g))
    assert torch.all(kl.k3(torch.randn(1000, generator=g), torch.randn(1000, generator=g)) >= 0)
    assert torch.all(kl.k3(p.logits, p.logits) == 0)
    torch.manual_seed(0)
    n = 200_000
    a = torch.multinomial(p.logits.exp()[0], n, replacement=True)
    old_logp, new_logp = p.logits[0, a], q.logits[0, a]
    exact = p.kl(q).item()  # D_KL(p ‖ q), samples from p (the "old" policy)
    assert kl.k3(new_logp, old_logp).mean().item() == pytest.approx(exact, rel=0.03)
    assert kl.k1(new_logp, old_logp).mean().item() == pytest.approx(exact, rel=0.03)


def test_pg_loss_gradient_is_minus_weighted_advantage_over_batch():
    logp = torch.tensor([-0.5, -1.0, -2.0], requires_grad=True)
    adv = torch.tensor([1.0, -2.0, 0.5])
    weight = torch.tensor([0.5, 1.0, 2.0])
    loss, stats = pg_loss(logp, adv, weight)
    loss.backward()
    torch.testing.assert_close(logp.grad, -(weight * adv) / 3)  # ∇ of −E[w Â log π] w.r.t. log π
    torch.testing.assert_close(loss, -(weight * adv * logp.detach()).mean())
    assert stats["mean_weight"].item() == pytest.approx(7 / 6)
    logp.grad = None
    pg_loss(logp, adv)[0].backward()
    torch.testing.assert_close(logp.grad, -adv / 3)


def test_kl_surrogate_closed_form_and_gradient():
    logp = torch.tensor([-0.2, -1.5], requires_grad=True)
    old_logp = torch.tensor([-0.4, -1.0])
    adv, kl_values = torch.tensor([1.0, -1.0]), torch.tensor([0.02, 0.04])
    loss, stats = kl_surrogate(logp, old_logp, adv, kl_values, kl_coef=3.0)
    ratio = (logp.detach() - old_logp).exp()
    torch.testing.assert_close(loss, -(ratio * adv).mean() + 3.0 * 0.03)  # −J^KL = −E[ρÂ − c KL]
    loss.backward()
    torch.testing.assert_close(logp.grad, -(ratio * adv) / 2)  # dρ/dlog π = ρ; the KL term is a given tensor here
    assert stats["kl"].item() == pytest.approx(0.03) and stats["clip_frac"].item() == 0.0


def test_kl_penalty_of_exact_categorical_kl_pulls_back_toward_the_old_policy():
    old = Categorical(torch.tensor([[0.0, 1.0, 2.0]]))
    logits = torch.tensor([[1.0, 0.0, 0.0]], requires_grad=True)
    penalty, stats = kl_penalty(old.kl(Categorical(logits)), kl_coef=2.0)
    penalty.backward()
    new_p = logits.detach().softmax(-1)
    torch.testing.assert_close(logits.grad, 2.0 * (new_p - old.logits.exp()))  # ∇_z KL(p‖softmax z) = q − p
    assert stats["kl"].item() > 0


@pytest.mark.parametrize("measured,coef", [(0.016, 2.0), (0.015, 1.0), (0.0067, 1.0), (0.006, 0.5)])
def test_adaptive_kl_doubles_above_1_5_target_and_halves_below_target_over_1_5(measured, coef):
    controller = kl.AdaptiveKL(coef=1.0, target=0.01)
    assert controller.update(measured) == coef
