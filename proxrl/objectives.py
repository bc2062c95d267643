"""Surrogate objectives as pure functions returning ``(loss, stats)``: loss is minimised, stats are detached.

Each function's tensors are flat batches ``[B]`` of per-sample quantities (or ``[B, ...]`` as stated).
"""

from __future__ import annotations

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
            "approx_kl": kl.k3(logp, old_logp).mean(),
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
