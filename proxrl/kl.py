"""KL divergence estimators between two policies from samples of the first (Schulman, "Approximating KL", 2020).

With log r = log π_new(a|s) − log π_old(a|s) and a ~ π_old:
k1 = −log r (unbiased, can be negative), k2 = ½ (log r)² (biased, low variance),
k3 = (r − 1) − log r (unbiased, always ≥ 0). Each estimates D_KL(π_old ‖ π_new).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def k1(logp: Tensor, old_logp: Tensor) -> Tensor:
    """k1 = log π_old(a|s) − log π(a|s), per sample."""
    return old_logp - logp


def k2(logp: Tensor, old_logp: Tensor) -> Tensor:
    """k2 = ½ (log π(a|s) − log π_old(a|s))², per sample."""
    return 0.5 * (logp - old_logp) ** 2


def k3(logp: Tensor, old_logp: Tensor) -> Tensor:
    """k3 = r − 1 − log r with r = π(a|s)/π_old(a|s), per sample; ≥ 0, and its mean estimates D_KL(π_old ‖ π).

    Called as ``k3(ref_logp, logp)`` on samples from π_θ it is the seed's GRPO estimator
    𝒟_KL(π_ref ‖ π_θ) = π_ref/π_θ − ln(π_ref/π_θ) − 1 (the DeepSeek paper's notation; its expectation under π_θ
    is KL(π_θ ‖ π_ref)). Computed as expm1(x) − x (accurate for small x)
    and clamped at 0, so float rounding never makes it negative.
    """
    log_ratio = logp - old_logp
    return (torch.expm1(log_ratio) - log_ratio).clamp(min=0.0)


@dataclass
class AdaptiveKL:
    """The KL-penalty coefficient c of adaptive-KL PPO (Schulman et al. 2017, Sec. 4): after each update, with d the
    measured D_KL(π_old ‖ π_θ), c ← 2c if d > 1.5 d_targ, c ← c/2 if d < d_targ/1.5, else unchanged."""

    coef: float
    target: float

    def update(self, measured_kl: float) -> float:
        """Adapt c to the KL the last update reached; returns the new c."""
        if measured_kl > 1.5 * self.target:
            self.coef *= 2.0
        elif measured_kl < self.target / 1.5:
            self.coef /= 2.0
        return self.coef
