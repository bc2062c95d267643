"""Surrogate objectives as pure functions returning ``(loss, stats)``: loss is minimised, stats are detached.

Each function's tensors are flat batches ``[B]`` of per-sample quantities (or ``[B, ...]`` as stated).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from . import kl


def clipped_surrogate_terms(ratio: Tensor, adv: Tensor, clip_low: float, clip_high: float) -> Tensor:
    """Per-sample (or per-token) min(ρ Â, clip(ρ, 1 − ε_low, 1 + ε_high) Â), the term J^CLIP averages.

    ε_high > ε_low lets unlikely tokens grow further ("clip-higher", DAPO); ε_low = ε_high is PPO's clip."""
    return torch.minimum(ratio * adv, ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * adv)


def clip_fractions(
    ratio: Tensor, adv: Tensor, clip_low: float, clip_high: float, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """(low, high): the shares of samples (of the tokens where ``mask`` is 1) whose term of J^CLIP the clip holds
    constant, so that they give no gradient: ρ < 1 − ε_low with Â < 0, and ρ > 1 + ε_high with Â > 0.

    ``clip_frac`` = low + high is proxrl's one definition, used by PPO, the fused gradient and GRPO (TRL's
    clip_ratio counts the same); SB3 and CleanRL count |ρ − 1| > ε whatever the sign of Â, which also counts
    samples the min leaves unclipped. Detached."""
    with torch.no_grad():
        low = ((ratio < 1.0 - clip_low) & (adv < 0)).to(ratio.dtype)
        high = ((ratio > 1.0 + clip_high) & (adv > 0)).to(ratio.dtype)
        if mask is None:
            return low.mean(), high.mean()
        m = mask.to(ratio.dtype)
        n = m.sum().clamp(min=1.0)
        return (low * m).sum() / n, (high * m).sum() / n


def clipped_surrogate(logp: Tensor, old_logp: Tensor, adv: Tensor, clip_eps: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Negative clipped surrogate −J^CLIP (Schulman et al. 2017, the seed's Equ. Clip-PPO).

    J^CLIP = E[min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â)] with ρ = π_θ(a|s)/π_θold(a|s). The gradient is zero exactly
    where the min selects the clipped branch (ρ > 1 + ε with Â > 0, or ρ < 1 − ε with Â < 0).
    Stats: ``approx_kl`` (k3 estimate of D_KL(π_old ‖ π_θ)) and ``clip_frac`` (:func:`clip_fractions`).
    """
    ratio = (logp - old_logp).exp()
    loss = -clipped_surrogate_terms(ratio, adv, clip_eps, clip_eps).mean()
    low, high = clip_fractions(ratio, adv, clip_eps, clip_eps)
    return loss, {"approx_kl": kl_k3_mean(logp, old_logp), "clip_frac": low + high}


LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
SAMPLING_CORRECTIONS = ("none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def aggregate_tokens(
    values: Tensor,
    mask: Tensor,
    loss_type: str,
    max_len: int | None = None,
    num_sequences: int | None = None,
    num_tokens: Tensor | float | None = None,
    num_micro_batches: int = 1,
) -> Tensor:
    """Reduce per-token values ``[B, L]`` over the tokens where ``mask`` ``[B, L]`` is 1, as TRL's ``loss_type``:

    - ``grpo``: mean over each completion's tokens, then over completions: Σ_i (Σ_t v_it / |o_i|) / B (Shao et al.
      2024; a token of a long completion weighs less);
    - ``bnpo``: Σ v / Σ mask over this micro-batch's tokens, divided by the M micro-batches (TRL's bnpo: each
      micro-batch normalised by its own token count);
    - ``dr_grpo``: Σ v / (B · L_max), a constant divisor (Liu et al. 2025, Dr. GRPO: no length bias);
    - ``dapo``: Σ v / N, N the whole batch's completion tokens (Yu et al. 2025, DAPO's token-level loss);
    - ``luspo``: Σ_i Σ_t v_it / B, each completion's tokens summed, not averaged (LUSPO: GSPO's loss scaled by each
      completion's length, so a long completion is not weighed down).

    ``sapo`` is reduced as ``grpo``, ``cispo`` and ``vespo`` as ``dapo`` (TRL's reductions of them).

    B is ``num_sequences`` (the whole batch's completions; this micro-batch's when None), L_max ``max_len``
    (``max_new_tokens``; the padded length when None), N ``num_tokens`` (this micro-batch's when None), M
    ``num_micro_batches``: with them, the micro-batch losses of a step add up to the batch's loss.
    """
    mask = mask.to(values.dtype)
    n_seq = values.shape[0] if num_sequences is None else num_sequences
    if loss_type in ("grpo", "sapo"):
        per_sequence = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        return per_sequence.sum() / n_seq
    if loss_type == "bnpo":
        return (values * mask).sum() / mask.sum().clamp(min=1.0) / num_micro_batches
    if loss_type == "dr_grpo":
        return (values * mask).sum() / (n_seq * (values.shape[-1] if max_len is None else max_len))
    if loss_type in ("dapo", "cispo", "vespo"):
        return (values * mask).sum() / (mask.sum().clamp(min=1.0) if num_tokens is None else num_tokens)
    if loss_type == "luspo":
        return (values * mask).sum() / n_seq
    raise ValueError(f"unknown loss_type {loss_type!r}; allowed: {', '.join(LOSS_TYPES)}")


def log_importance_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor, level: str = "token") -> Tensor:
    """ln ρ: per token, ``[B, L]``, ln π_θ(o_t|…) − ln π_old(o_t|…); or per completion (GSPO, Zheng et al. 2025),
    ``[B, 1]``, the length-normalised sequence ratio ln s_i = (1/|o_i|) Σ_t (ln π_θ − ln π_old) over its tokens."""
    log_ratio = logp - old_logp
    if level == "token":
        return log_ratio
    if level == "sequence":
        m = mask.to(log_ratio.dtype)
        return (log_ratio * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)
    raise ValueError(f"unknown importance_sampling_level {level!r}; allowed: {', '.join(IMPORTANCE_SAMPLING_LEVELS)}")


def sampling_correction(
    old_logp: Tensor,
    sampling_logp: Tensor,
    mask: Tensor,
    mode: str,
    c_max: float | None = 3.0,
    c_min: float | None = None,
) -> Tensor:
    """The importance weight that corrects for a sampler whose distribution μ differs from the trainer's π_θold
    (another engine, other kernels, top-p), as TRL's ``vllm_importance_sampling_mode``:

        w_{i,t} = π_θold(o_t|…) / μ(o_t|…)        (token modes, ``[B, L]``),
        w_i = Π_t π_θold(o_t|…) / μ(o_t|…)        (sequence modes, ``[B, 1]``; over the completion's tokens),

    then ``*_truncate`` clips w to [c_min, c_max] (truncated importance sampling, TIS; Yao et al. 2025, "Your
    efficient RL framework secretly brings you off-policy RL training") and ``*_mask`` sets w to 0 outside
    [c_min, c_max] (masked importance sampling, MIS). A bound of None is no bound. The weight carries no gradient:
    it multiplies each token's clipped surrogate (:func:`grpo_loss`'s ``sampling_weight``). A token whose μ is NaN
    (a sampler that did not give it) counts with ln w = 0, as in TRL."""
    return bound_sampling_ratio(sampling_ratio(old_logp, sampling_logp, mask, mode), mode, c_max, c_min)


def sampling_ratio(old_logp: Tensor, sampling_logp: Tensor, mask: Tensor, mode: str) -> Tensor:
    """w = π_θold/μ before its bounds: per token, or per completion for the ``sequence_*`` modes
    (:func:`sampling_correction`)."""
    if mode not in SAMPLING_CORRECTIONS[1:]:
        raise ValueError(f"unknown sampling correction {mode!r}; allowed: {', '.join(SAMPLING_CORRECTIONS[1:])}")
    # a sampler that gave no log-prob for a token (NaN) gets none of its correction there: w = 1, as TRL does
    log_w = (old_logp.detach() - sampling_logp) * mask.to(old_logp.dtype)
    log_w = torch.nan_to_num(log_w, nan=0.0)
    if mode.startswith("sequence"):
        log_w = log_w.sum(-1, keepdim=True)
    return log_w.exp()


def bound_sampling_ratio(w: Tensor, mode: str, c_max: float | None, c_min: float | None) -> Tensor:
    """The bounds of :func:`sampling_correction` on w = π_θold/μ: clipped to [c_min, c_max] (``*_truncate``) or 0
    outside them (``*_mask``); None is no bound."""
    if mode.endswith("truncate"):
        return w if c_min is None and c_max is None else w.clamp(min=c_min, max=c_max)
    outside = (w < (c_min if c_min is not None else -math.inf)) | (w > (c_max if c_max is not None else math.inf))
    return w.masked_fill(outside, 0.0)


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    mask: Tensor,
    clip_low: float,
    clip_high: float,
    ref_logp: Tensor | None = None,
    beta: float = 0.0,
    loss_type: str = "grpo",
    importance_sampling_level: str = "token",
    sampling_weight: Tensor | None = None,
    sapo_temperatures: tuple[float, float] = (1.0, 1.05),
    vespo_shape: tuple[float, float, float, float] = (2.0, 3.0, 3.0, 2.0),
    kl_importance_weighted: bool = False,
    **aggregate_kwargs: Any,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Negative GRPO objective (the seed's GRPO section; Shao et al. 2024), per token t of completion i:

        −[min(ρ_{i,t} Â_i, clip(ρ_{i,t}, 1 − ε_low, 1 + ε_high) Â_i) − β D̂_KL,i,t],
        ρ = π_θ/π_θold,  D̂_KL = π_ref/π_θ − ln(π_ref/π_θ) − 1  (k3, ≥ 0, = 0 where π_θ = π_ref)

    aggregated over the completion tokens by :func:`aggregate_tokens` (``loss_type``). With
    ``importance_sampling_level="sequence"`` (GSPO) every token of completion i uses its sequence ratio s_i
    (:func:`log_importance_ratio`) instead of ρ_{i,t}, and the clip acts on whole completions.
    ``logp``/``old_logp``/``ref_logp``/``mask`` are ``[B, L]``; ``adv`` is ``[B, 1]`` (one Â per completion, GRPO)
    or ``[B, L]`` (per token, e.g. GAE; token level only). β = 0 (or no ``ref_logp``) drops the KL term. Stats:
    ``clip_frac`` = ``clip_frac_low`` + ``clip_frac_high`` (:func:`clip_fractions`: the share of tokens, or of
    completions at sequence level, whose term the clip holds constant) and ``kl`` (mean k3 over the tokens; k3·ρ
    with ``kl_importance_weighted``, as TRL logs it).
    ``sampling_weight`` (``[B, L]`` or ``[B, 1]``; :func:`sampling_correction`) multiplies each token's clipped
    surrogate, not the KL term, as TRL does. ``kl_importance_weighted`` (TRL's ``use_bias_correction_kl``) makes
    the KL term β D̂_KL,i,t ρ_{i,t} (ρ with its gradient; at sequence level s_i), whose gradient is the unbiased
    one of the reverse KL off-policy (DeepSeek-V3.2, Eq. 7); even at ρ = 1 it adds β D̂_KL ∇ln π.

    Two loss types replace the clipped surrogate itself, as TRL's:

    - ``cispo`` (MiniMax-M1, Chen et al. 2025): −sg(min(ρ, ε_max)) Â ln π_θ, the importance weight clipped and
      held constant, so every token keeps a gradient; ε_max is ``clip_high`` (not 1 + ε_high);
    - ``sapo`` (Gao et al. 2025, Soft Adaptive Policy Optimization): −σ(τ(ρ − 1)) (4/τ) Â, a smooth gate for the
      clip, τ = ``sapo_temperatures``[0] where Â > 0 and [1] elsewhere; its gradient at ρ = 1 is the policy
      gradient's. Its ``clip_frac`` is 0 (nothing is clipped); cispo's counts ρ > ε_max with Â > 0;
    - ``vespo`` (VESPO): −sg(φ(w_i)) Â ln π_θ with the Gamma weight :func:`vespo_weight` of each completion's whole
      ratio w_i (the sampler's correction folded into w_i, not multiplied after); ``clip_frac`` 0.

    ``luspo`` keeps the clipped surrogate (meant with the sequence ratio) and changes only the reduction.
    """
    ratio = log_importance_ratio(logp, old_logp, mask, importance_sampling_level).exp()
    if loss_type == "vespo":
        phi = vespo_weight(logp - old_logp, adv, mask, vespo_shape, sampling_weight)
        per_token = -(phi * adv * logp)
        sampling_weight = None  # folded into w
    elif loss_type == "cispo":
        per_token = -(ratio.clamp(max=clip_high).detach() * adv * logp)
    elif loss_type == "sapo":
        tau = torch.where(adv > 0, sapo_temperatures[0], sapo_temperatures[1])
        per_token = -(torch.sigmoid(tau * (ratio - 1.0)) * 4.0 / tau * adv).expand(mask.shape)
    else:
        per_token = -clipped_surrogate_terms(ratio, adv, clip_low, clip_high).expand(mask.shape)
    if sampling_weight is not None:
        per_token = per_token * sampling_weight
    kl_tokens = None
    if ref_logp is not None and beta > 0:
        kl_tokens = kl.k3(ref_logp, logp)  # samples from π_θ: r = π_ref/π_θ
        if kl_importance_weighted:  # TRL's use_bias_correction_kl: k3·ρ, ρ with its gradient (logged so, as TRL)
            kl_tokens = kl_tokens * ratio
        per_token = per_token + beta * kl_tokens
    loss = aggregate_tokens(per_token, mask, loss_type, **aggregate_kwargs)
    token_mask = mask if importance_sampling_level == "token" else None  # sequence level: shares of completions
    if loss_type == "cispo":  # ρ > ε_max: the weight held at ε_max (clip_fractions' 1 + ε_high is ε_max here)
        low, high = clip_fractions(ratio, adv.expand_as(ratio), 1.0, clip_high - 1.0, token_mask)
    elif loss_type in ("sapo", "vespo"):
        low = high = torch.zeros(())
    else:
        low, high = clip_fractions(ratio, adv.expand_as(ratio), clip_low, clip_high, token_mask)
    with torch.no_grad():
        m = mask.to(ratio.dtype)
        kl_mean = (kl_tokens.detach() * m).sum() / m.sum().clamp(min=1.0) if kl_tokens is not None else torch.zeros(())
    return loss, {"clip_frac": low + high, "clip_frac_low": low, "clip_frac_high": high, "kl": kl_mean}


def vespo_weight(
    log_ratio: Tensor,
    adv: Tensor,
    mask: Tensor,
    shape: tuple[float, float, float, float] = (2.0, 3.0, 3.0, 2.0),
    sampling_weight: Tensor | None = None,
) -> Tensor:
    """VESPO's Gamma weight of each completion (Variational sequence-level soft policy optimisation, as TRL's
    ``vespo``), detached ``[B, 1]``:

        φ(w) = e^λ w^k e^{−λw}  (φ(1) = 1),  ln w_i = Σ_t (ln π_θ − ln π_old) over completion i's tokens

    computed in log space, ln w clamped to [ln 1e-8, 20] (each token's log-ratio to ±20 first). ``shape`` is (k, λ)
    where Â ≥ 0, then (k, λ) where Â < 0: TRL's ``vespo_k_pos``, ``vespo_lambda_pos``, ``vespo_k_neg``,
    ``vespo_lambda_neg``. ``sampling_weight`` (π_old/μ per token) adds its logs to ln w. ``adv`` is ``[B, 1]``."""
    k_pos, lam_pos, k_neg, lam_neg = shape
    with torch.no_grad():
        m = mask.to(log_ratio.dtype)
        log_w = (log_ratio.clamp(-20.0, 20.0) * m).sum(-1, keepdim=True)
        if sampling_weight is not None:
            log_w = log_w + (sampling_weight.clamp(min=1e-8).log().clamp(max=20.0) * m).sum(-1, keepdim=True)
        log_w = log_w.clamp(math.log(1e-8), 20.0)
        positive = adv >= 0
        k = torch.where(positive, k_pos, k_neg)
        lam = torch.where(positive, lam_pos, lam_neg).clamp(min=1e-4)
        return (lam + k * log_w - lam * log_w.exp()).exp().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


def value_loss(
    values: Tensor, returns: Tensor, old_values: Tensor | None = None, clip_eps: float | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """Critic regression ½ E[(V_w(s) − R̂)²]; with ``clip_eps``, PPO's clipped form
    ½ E[max((V − R̂)², (V_old + clip(V − V_old, −ε, ε) − R̂)²)] that keeps V near its rollout value."""
    err = (values - returns) ** 2
    if clip_eps is not None:
        assert old_values is not None, "value clipping needs the rollout's values"
        clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        err = torch.maximum(err, (clipped - returns) ** 2)
    loss = 0.5 * err.mean()
    return loss, {"value_loss": loss.detach()}


def entropy_bonus(entropy: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Entropy term of J^CLIP+: H(π(·|s)) = −Σ_a π(a|s) log π(a|s), averaged; returned as a loss −H."""
    mean = entropy.mean()
    return -mean, {"entropy": mean.detach()}


def pg_loss(logp: Tensor, adv: Tensor, weight: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Negative policy-gradient surrogate −E[w Â log π_θ(a|s)], whose gradient is the seed's sampled estimator
    E[w Â ∇ln π(a|s)]: Theorem 1 with Â = G (REINFORCE), Theorem 2 with Â = Q − b(s) (G − V, GAE, δ), and the
    off-policy gradient E_β[π(a|s)/β(a|s) Q^π(s,a) ∇ln π(a|s)] with w = π/β (or a truncation of it).
    ``adv`` and ``weight`` are constants of the gradient (detached here). Stats: ``mean_weight`` (1 without w)."""
    coef = adv if weight is None else weight * adv
    loss = -(coef.detach() * logp).mean()
    with torch.no_grad():
        mean_weight = torch.ones((), device=logp.device) if weight is None else weight.mean()
    return loss, {"mean_weight": mean_weight}


def kl_penalty(kl: Tensor, kl_coef: float) -> tuple[Tensor, dict[str, Tensor]]:
    """c E[D_KL(π_old ‖ π_θ)] for per-sample exact divergences ``kl`` ``[B]``: the penalty term of J^KL (the seed's
    KL-PPO equation), added to J^CLIP by the clip + KL objective. Stats: ``kl`` (the mean divergence)."""
    mean = kl.mean()
    return kl_coef * mean, {"kl": mean.detach()}


def kl_surrogate(
    logp: Tensor, old_logp: Tensor, adv: Tensor, kl: Tensor, kl_coef: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Negative KL-penalised surrogate −J^KL = −E[ρ Â − c D_KL(π_old ‖ π_θ)] with ρ = π_θ(a|s)/π_θold(a|s) (the
    seed's KL-PPO equation); ``kl`` ``[B]`` holds the exact per-state D_KL(π_old(·|s) ‖ π_θ(·|s)), not a sample.
    Stats: ``approx_kl`` (k3), ``kl`` (exact mean) and ``clip_frac`` (0: nothing is clipped)."""
    ratio = (logp - old_logp).exp()
    penalty, stats = kl_penalty(kl, kl_coef)
    loss = -(ratio * adv).mean() + penalty
    with torch.no_grad():
        stats["approx_kl"] = kl_k3_mean(logp, old_logp)
        stats["clip_frac"] = torch.zeros((), device=logp.device)
    return loss, stats


def kl_k3_mean(logp: Tensor, old_logp: Tensor) -> Tensor:
    """Mean k3 estimate of D_KL(π_old ‖ π_θ) from the samples' log-probs (detached)."""
    return kl.k3(logp.detach(), old_logp).mean()


def importance_weight(logp: Tensor, behaviour_logp: Tensor, max_weight: float = math.inf) -> Tensor:
    """Truncated importance weight min(π(a|s)/β(a|s), c̄) of the off-policy gradient (the seed's Off-Policy PG;
    c̄ = ∞ leaves it unbiased, a finite c̄ trades bias for variance as in Retrace/IMPALA). Detached: a constant
    of the gradient, as in E_β[π/β Q^π ∇ln π]."""
    return (logp.detach() - behaviour_logp).exp().clamp(max=max_weight)
