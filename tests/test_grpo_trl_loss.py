"""GRPO's loss against TRL 1.16's ``_compute_loss``, where they differed (issue 35): TRL's
``use_bias_correction_kl`` (the k3 term weighted by the importance ratio, with its gradient), a sampler that gives
no log-prob for a token (NaN: weight 1 there, as TRL), and ``reward_weights`` pinned by value and by the advantages
they make."""

from __future__ import annotations

import math

import torch

from proxrl import GRPO
from proxrl.advantages import group_relative
from proxrl.objectives import GRPOBatch, make_grpo_loss, sampling_correction
from test_grpo_cispo_sapo import ADV, LOGP, MASK, OLD
from test_grpo_sampling import TINY

REF = torch.tensor([[-1.5, -0.5, -1.0], [0.0, -2.0, -9.0]])
BETA = 0.1


def k3(ref: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """TRL's per-token KL: exp(ref − logp) − (ref − logp) − 1."""
    return torch.exp(ref - logp) - (ref - logp) - 1


def per_completion_mean(values: torch.Tensor) -> torch.Tensor:
    """loss_type grpo: the mean over each completion's tokens, then over the completions."""
    return ((values * MASK).sum(-1) / MASK.sum(-1)).mean()


def loss_of(logp, old=OLD, weighted=False, level="token", weight=None):
    """loss_type grpo (ε = 0.2, β = 0.1) on the hand example: (loss, stats)."""
    loss_fn = make_grpo_loss(
        "grpo", clip_low=0.2, clip_high=0.2, beta=BETA, importance_sampling_level=level, kl_importance_weighted=weighted
    )
    return loss_fn(GRPOBatch(logp, old, ADV, MASK, ref_logp=REF, sampling_weight=weight))


def test_the_kl_term_is_beta_k3_or_with_trls_bias_correction_beta_k3_rho_off_policy():
    ratio = (LOGP - OLD).exp()
    clipped = -torch.minimum(ratio * ADV, ratio.clamp(0.8, 1.2) * ADV)
    plain, stats = loss_of(LOGP)
    corrected, corrected_stats = loss_of(LOGP, weighted=True)
    # the logged kl is the term the loss has, as TRL logs it: k3, or k3·ρ
    torch.testing.assert_close(stats["kl"], (k3(REF, LOGP) * MASK).sum() / MASK.sum(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(
        corrected_stats["kl"], (k3(REF, LOGP) * ratio * MASK).sum() / MASK.sum(), rtol=1e-6, atol=1e-7
    )
    torch.testing.assert_close(plain, per_completion_mean(clipped + BETA * k3(REF, LOGP)), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(
        corrected, per_completion_mean(clipped + BETA * k3(REF, LOGP) * ratio), rtol=1e-6, atol=1e-7
    )
    # they differ by β·k3·(ρ − 1) per token, which is not 0 here
    torch.testing.assert_close(corrected - plain, per_completion_mean(BETA * k3(REF, LOGP) * (ratio - 1)))
    assert abs((corrected - plain).item()) > 1e-3


def test_on_policy_the_bias_correction_adds_beta_k3_to_each_tokens_gradient():
    grads = []
    for weighted in (False, True):
        logp = LOGP.clone().requires_grad_(True)
        loss, _ = loss_of(logp, logp.detach(), weighted=weighted)
        loss.backward()
        grads.append(logp.grad)
    weight = MASK / MASK.sum(-1, keepdim=True) / 2  # grpo's weight of each token: 1/|o_i| / B
    # ρ = 1 with ∂ρ/∂ln π = 1: −Â from the surrogate, β(1 − π_ref/π) from k3, and β·k3 more from k3·ρ
    torch.testing.assert_close(grads[0], (-ADV + BETA * (1 - (REF - LOGP).exp())) * weight)
    torch.testing.assert_close(grads[1], grads[0] + BETA * k3(REF, LOGP) * weight)


def test_at_sequence_level_the_corrected_kl_term_carries_the_sequence_ratio():
    log_s = ((LOGP - OLD) * MASK).sum(-1, keepdim=True) / MASK.sum(-1, keepdim=True)
    s = log_s.exp()
    clipped = -torch.minimum(s * ADV, s.clamp(0.8, 1.2) * ADV)
    loss, _ = loss_of(LOGP, level="sequence", weighted=True)
    torch.testing.assert_close(loss, per_completion_mean(clipped + BETA * k3(REF, LOGP) * s))


def test_the_trainer_passes_use_bias_correction_kl_to_the_loss():
    seen = []
    for flag in (False, True):
        agent = GRPO("addition", **{**TINY, "beta": 0.1}, use_bias_correction_kl=flag)
        real = agent.loss  # built once, at construction
        agent.loss = lambda batch, real=real: seen.append(real.kl_importance_weighted) or real(batch)
        agent.learn(1)
    assert seen == [False, True]


def test_a_nan_sampler_log_prob_gives_that_token_weight_one_as_trl():
    mu = OLD.clone()
    mu[0, 1] = math.nan  # a token whose log-prob the sampler did not give
    mu[1, 2] = math.nan  # and one in the padding
    mu[0, 0] = OLD[0, 0] + math.log(2.0)  # another token: w = 1/2
    for mode in ("token_truncate", "token_mask"):
        w = sampling_correction(OLD, mu, MASK, mode)
        torch.testing.assert_close(w, torch.tensor([[0.5, 1.0, 1.0], [1.0, 1.0, 1.0]]))
    for mode in ("sequence_truncate", "sequence_mask"):
        torch.testing.assert_close(sampling_correction(OLD, mu, MASK, mode), torch.tensor([[0.5], [1.0]]))
    logp = LOGP.clone().requires_grad_(True)
    weight = sampling_correction(OLD, mu, MASK, "token_truncate")
    loss, _ = loss_of(logp, weight=weight)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()


def alternating(completions, **kwargs):
    """1, 0, 1, 0, … over the batch's completions."""
    return [float(k % 2 == 0) for k in range(len(completions))]


def the_other(completions, **kwargs):
    """0, 1, 0, 1, …: with ``alternating`` it sums to 1 on every completion, so unweighted every Â is 0."""
    return [float(k % 2 == 1) for k in range(len(completions))]


def test_reward_weights_set_the_reward_and_so_the_advantages(monkeypatch):
    P, G = TINY["prompts_per_step"], TINY["group_size"]
    captured = {}
    for weights in ((1.0, 1.0), (3.0, 1.0)):
        agent = GRPO("addition", **TINY, reward_funcs=[alternating, the_other], reward_weights=weights)
        real = agent._optimise

        def spy(gens, adv, rewards, real=real, weights=weights):
            captured[weights] = adv
            return real(gens, adv, rewards)

        monkeypatch.setattr(agent, "_optimise", spy)
        examples, gens, scored, _ = agent.sample_batch()
        rewards, stats = agent.update(examples, gens, scored)
        expected = torch.tensor([weights[0] if k % 2 == 0 else weights[1] for k in range(P * G)])
        torch.testing.assert_close(rewards, expected)
        torch.testing.assert_close(captured[weights].flatten(), group_relative(expected.view(P, G), "group").flatten())
    assert captured[(1.0, 1.0)].abs().max() == 0  # the unweighted sum is flat: no advantage at all
    assert captured[(3.0, 1.0)].abs().min() > 0.5  # weighted: every completion has one


def test_completions_no_function_scored_leave_the_group_statistics_and_get_no_advantage_as_trl():
    nan = math.nan
    rewards = torch.tensor([[1.0, nan, 3.0], [nan, nan, nan], [2.0, nan, nan], [5.0, 5.0, nan]])
    by_group = group_relative(rewards, "group")
    s = math.sqrt(2.0)  # the unbiased std of {1, 3}
    expected = torch.tensor([[-1 / (s + 1e-4), 0.0, 1 / (s + 1e-4)], [0.0] * 3, [0.0] * 3, [0.0] * 3])
    torch.testing.assert_close(by_group, expected)  # one score, or equal scores: Â = 0; unscored: Â = 0
    scores = torch.tensor([1.0, 3.0, 2.0, 5.0, 5.0])
    centred = torch.tensor([[-1.0, 0.0, 1.0], [0.0] * 3, [0.0] * 3, [0.0] * 3])
    torch.testing.assert_close(group_relative(rewards, "batch"), centred / (scores.std() + 1e-4))
    torch.testing.assert_close(group_relative(rewards, "none"), centred)


def scores_two_of_three(completions, **kwargs):
    """1, 0, None, 1, 0, None, …: the third completion of each group of 3 is scored by no function."""
    return [[1.0, 0.0, None][k % 3] for k in range(len(completions))]


def test_the_trainer_leaves_an_unscored_completion_out_of_its_groups_advantage(monkeypatch):
    agent = GRPO("addition", **TINY, reward_funcs=scores_two_of_three)  # G = 3
    captured = []
    real = agent._optimise
    monkeypatch.setattr(agent, "_optimise", lambda gens, adv, r: captured.append(adv) or real(gens, adv, r))
    examples, gens, scored, _ = agent.sample_batch()
    rewards, _ = agent.update(examples, gens, scored)
    torch.testing.assert_close(rewards, torch.tensor([1.0, 0.0, 0.0] * TINY["prompts_per_step"]))  # nansum: 0
    a = 1 / (math.sqrt(0.5) + 1e-4)  # over {1, 0}: mean 0.5, unbiased std √0.5; the unscored one left out
    torch.testing.assert_close(captured[0].flatten(), torch.tensor([a / 2, -a / 2, 0.0] * TINY["prompts_per_step"]))
