"""Surrogate objectives as pure functions returning ``(loss, stats)``: loss is minimised, stats are detached.

Each function's tensors are flat batches ``[B]`` of per-sample quantities (or ``[B, ...]`` as stated).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import kl


def clipped_surrogate(
    logp: Tensor, old_logp: Tensor, adv: Tensor, clip_eps: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Negative clipped surrogate −J^CLIP (Schulman et al. 2017, the seed's Equ. Clip-PPO).

    J^CLIP = E[min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â)] with ρ = π_θ(a|s)/π_θold(a|s). The gradient is zero exactly
    where the min selects the clipped branch (ρ > 1 + ε with Â > 0, or ρ < 1 − ε with Â < 0).
    Stats: ``approx_kl`` (k3 estimate of D_KL(π_old ‖ π_θ)) and ``clip_frac`` (share of samples clipped).
    """
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv
    loss = -torch.minimum(unclipped, clipped).mean()
    with torch.no_grad():
        stats = {
            "approx_kl": kl_k3_mean(logp, old_logp),
            "clip_frac": ((ratio - 1.0).abs() > clip_eps).float().mean(),
        }
    return loss, stats


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
