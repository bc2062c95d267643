"""TRL's two loss types that replace the clipped surrogate (issue 18): CISPO (the clipped importance weight held
constant, times Â ln π, reduced over the batch's tokens) and SAPO (a sigmoid gate instead of the clip, reduced
per completion), each checked by hand, value and gradient."""

from __future__ import annotations

import pytest
import torch

from proxrl import GRPO
from proxrl.config import ConfigError
from proxrl.objectives import GRPOBatch, make_grpo_loss
from test_grpo_sampling import TINY

# two completions of 3 and 2 tokens (the last token of the second is padding)
LOGP = torch.tensor([[-1.0, -0.5, -2.0], [-0.2, -1.5, -3.0]])
OLD = torch.tensor([[-1.0, -2.5, -1.0], [-0.2, -1.0, 0.0]])  # ρ = 1, e², e⁻¹ | 1, e^-0.5, (padding)
ADV = torch.tensor([[1.0], [-2.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def test_cispo_weighs_ln_pi_by_the_capped_ratio_held_constant():
    logp = LOGP.clone().requires_grad_(True)
    loss, stats = make_grpo_loss("cispo", clip_low=0.2, clip_high=5.0)(GRPOBatch(logp, OLD, ADV, MASK))
    w = (LOGP - OLD).exp().clamp(max=5.0)  # e² = 7.39 capped at ε_max = 5
    by_hand = -(w * ADV * LOGP * MASK).sum() / MASK.sum()  # over the batch's 5 tokens
    torch.testing.assert_close(loss, by_hand)
    loss.backward()
    # the weight carries no gradient: ∂loss/∂ln π = −w Â / N on every token, the capped one included
    torch.testing.assert_close(logp.grad, -(w * ADV) * MASK / 5)
    assert stats["clip_frac_high"].item() == pytest.approx(1 / 5)  # ρ = e² > 5 with Â > 0
    assert stats["clip_frac_low"].item() == 0.0


def test_sapo_gates_the_ratio_with_a_sigmoid_and_its_gradient_at_one_is_the_policy_gradient():
    logp = LOGP.clone().requires_grad_(True)
    sapo = make_grpo_loss("sapo", clip_low=0.2, clip_high=0.2, sapo_temperatures=(1.0, 1.05))
    loss, stats = sapo(GRPOBatch(logp, OLD, ADV, MASK))
    ratio = (LOGP - OLD).exp()
    tau = torch.tensor([[1.0], [1.05]])  # Â > 0: τ_pos; Â < 0: τ_neg
    per_token = -torch.sigmoid(tau * (ratio - 1)) * 4 / tau * ADV
    by_hand = ((per_token * MASK).sum(-1) / MASK.sum(-1)).mean()  # reduced as grpo
    torch.testing.assert_close(loss, by_hand)
    loss.backward()
    s = torch.sigmoid(tau * (ratio - 1))
    grad = -(s * (1 - s) * 4 * ratio * ADV) * MASK / MASK.sum(-1, keepdim=True) / 2
    torch.testing.assert_close(logp.grad, grad)
    # at ρ = 1: σ'(0) · 4 = 1, so ∂/∂ln π = −Â / |o_i| / B, the policy gradient (grpo's at ρ = 1)
    assert grad[0, 0].item() == pytest.approx(-1.0 / 3 / 2)
    assert stats["clip_frac"].item() == 0.0


EXTRA = {"cispo": {"clip_eps_high": 5.0}, "luspo": {"importance_sampling_level": "sequence"}}


@pytest.mark.parametrize("loss_type", ["cispo", "sapo", "luspo", "vespo"])  # (luspo, vespo: test_grpo_luspo_vespo)
def test_a_grpo_run_trains_with_each(loss_type):
    extra = EXTRA.get(loss_type, {})
    agent = GRPO("addition", **TINY, loss_type=loss_type, seed=0, **extra)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    rows = []
    agent.learn(2, callback=lambda _a, row: rows.append(row))
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    assert any((p - q).abs().max() > 0 for p, q in zip(agent.policy.parameters(), before, strict=True))


def test_cispo_takes_clip_eps_as_its_cap_without_clip_eps_high_as_trl_does():
    # TRL 1.16: ε_max = epsilon_high if set, else epsilon (self.epsilon_high = args.epsilon_high or args.epsilon)
    config = GRPO("addition", **TINY, loss_type="cispo").config
    assert config.clip_eps_high is None and config.clip_eps == 0.2
    logp = LOGP.clone().requires_grad_(True)
    loss, _ = config.make_loss()(GRPOBatch(logp, OLD, ADV, MASK))  # the loss GRPO builds then: ε_max = 0.2
    w = (LOGP - OLD).exp().clamp(max=0.2)  # every weight capped at 0.2 (ρ ≥ e⁻¹ > 0.2)
    torch.testing.assert_close(loss, -(w * ADV * LOGP * MASK).sum() / MASK.sum())
    with pytest.raises(ConfigError, match="clip_eps_high"):  # a cap of 0 stays refused (ε_high > 0)
        GRPO("addition", **TINY, loss_type="cispo", clip_eps_high=0.0)
