"""TRL's LUSPO (GSPO's loss with each completion's tokens summed, not averaged) and VESPO (a Gamma weight of each
completion's whole ratio, held constant, times Â ln π, reduced over the batch's tokens), each checked by hand,
value and gradient (issue 18). A run of each: tests/test_grpo_cispo_sapo.py."""

from __future__ import annotations

import math

import pytest
import torch

from proxrl import GRPO
from proxrl.config import ConfigError
from proxrl.objectives import GRPOBatch, make_grpo_loss, vespo_weight
from test_grpo_cispo_sapo import ADV, LOGP, MASK, OLD
from test_grpo_sampling import TINY


def loss_of(loss_type, logp, level="token", weight=None, **constants):
    """``loss_type``'s loss (ε = 0.2) on the hand example with ln π = ``logp``: (loss, stats)."""
    loss_fn = make_grpo_loss(loss_type, clip_low=0.2, clip_high=0.2, importance_sampling_level=level, **constants)
    return loss_fn(GRPOBatch(logp, OLD, ADV, MASK, sampling_weight=weight))


def test_luspo_sums_each_completions_clipped_terms_and_averages_over_completions():
    logp = LOGP.clone().requires_grad_(True)
    loss, _ = loss_of("luspo", logp, "sequence")
    # GSPO's sequence ratio s_i = exp(mean_t ln ρ_it): e^(1/3) for the first, e^(-0.25) for the second
    s = torch.tensor([[math.exp(1 / 3)], [math.exp(-0.25)]])
    clipped = torch.minimum(s * ADV, s.clamp(0.8, 1.2) * ADV)  # first held at 1.2 (Â > 0), second 0.8 (Â < 0)
    lengths = MASK.sum(-1, keepdim=True)
    by_hand = -(clipped * lengths).sum() / 2  # |o_i| · term_i, mean over the B = 2 completions
    torch.testing.assert_close(loss, by_hand)
    grpo, _ = loss_of("grpo", LOGP, "sequence")
    torch.testing.assert_close(grpo, -clipped.sum() / 2)  # grpo averages the same terms: no length factor
    loss.backward()  # both completions are clipped: no gradient
    assert logp.grad.abs().max().item() == 0.0


def test_vespo_weighs_ln_pi_by_the_gamma_weight_of_the_whole_ratio_held_constant():
    logp = LOGP.clone().requires_grad_(True)
    loss, stats = loss_of("vespo", logp, vespo_shape=(2.0, 3.0, 3.0, 2.0))
    # ln w_i = Σ_t ln ρ_it (summed, not GSPO's mean): 0 + 2 − 1 = 1 for the first, 0 − 0.5 = −0.5 for the second
    w = torch.tensor([[math.e], [math.exp(-0.5)]])
    k, lam = torch.tensor([[2.0], [3.0]]), torch.tensor([[3.0], [2.0]])  # Â ≥ 0: (k+, λ+); Â < 0: (k−, λ−)
    phi = torch.exp(lam) * w**k * torch.exp(-lam * w)
    by_hand = -(phi * ADV * LOGP * MASK).sum() / MASK.sum()  # reduced as dapo
    torch.testing.assert_close(loss, by_hand)
    loss.backward()
    torch.testing.assert_close(logp.grad, -(phi * ADV) * MASK / 5)  # φ carries no gradient
    assert stats["clip_frac"].item() == 0.0
    ones = vespo_weight(torch.zeros(2, 3), ADV, MASK)  # on-policy: w = 1, φ(1) = 1, the policy gradient
    torch.testing.assert_close(ones, torch.ones(2, 1))


def test_vespo_folds_the_samplers_correction_into_the_ratio():
    weight = torch.tensor([[0.5, 1.0, 1.0], [2.0, 1.0, 7.0]])  # the padding's 7 is left out
    with_tis = vespo_weight(LOGP - OLD, ADV, MASK, sampling_weight=weight)
    shifted = vespo_weight(LOGP - OLD + weight.log() * MASK, ADV, MASK)
    torch.testing.assert_close(with_tis, shifted)
    plain, _ = loss_of("vespo", LOGP)
    corrected, _ = loss_of("vespo", LOGP, weight=weight)
    phi = vespo_weight(LOGP - OLD, ADV, MASK, sampling_weight=weight)
    torch.testing.assert_close(corrected, -(phi * ADV * LOGP * MASK).sum() / 5)  # not multiplied by it again
    assert not torch.isclose(plain, corrected)


def test_vespo_at_sequence_level_weighs_as_at_token_level_as_trl_does():
    # TRL 1.16 only warns: φ comes from the per-token log-ratios whatever the level, which then sets only k3's ρ
    GRPO("addition", **TINY, loss_type="vespo", importance_sampling_level="sequence")  # accepted
    token, _ = loss_of("vespo", LOGP)
    sequence, _ = loss_of("vespo", LOGP, "sequence")
    torch.testing.assert_close(sequence, token, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="loss_type=vespo weighs each completion by its own whole ratio"):
        GRPO("addition", **TINY, loss_type="vespo", sampling_correction="sequence_mask")
