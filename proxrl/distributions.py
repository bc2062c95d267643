"""Action distributions for gymnasium spaces: Categorical (Discrete), product of Categoricals (MultiDiscrete)
and diagonal Gaussian (Box).

Small hand-written classes rather than ``torch.distributions``: acting happens every env step and these skip
argument validation and broadcasting machinery; ``tests/test_distributions.py`` checks them against
``torch.distributions``. Each gives ``log_prob``, ``entropy`` and the exact ``kl`` D_KL(self ‖ other).

gSDE (generalised state-dependent exploration, Raffin et al. 2021) needs no class of its own: its policy is the
diagonal Gaussian N(μ(s), Var(s)) of :func:`gsde_variance`, built by :func:`gsde_distribution`; only the rollout's
samples differ, μ(s) + :func:`gsde_noise` with an exploration matrix held fixed for several steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from .errors import ConfigError

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class UnsupportedSpaceError(ConfigError):
    """The environment's action or observation space is not one this method supports."""


@dataclass
class Categorical:
    """π(a|s) = softmax(logits)_a over ``[B, K]`` logits; actions ``[B]`` int64."""

    logits: Tensor

    def __post_init__(self) -> None:
        self.logits = torch.log_softmax(self.logits, dim=-1)

    def sample(self) -> Tensor:
        probs = self.logits.exp()
        return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(probs.shape[:-1])

    def mode(self) -> Tensor:
        return self.logits.argmax(-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        return -(self.logits.exp() * self.logits).sum(-1)

    def kl(self, other: Distribution) -> Tensor:
        """Exact D_KL(self ‖ other) = Σ_a p(a) (log p(a) − log q(a)); ``other`` of the same space."""
        assert isinstance(other, Categorical)
        return (self.logits.exp() * (self.logits - other.logits)).sum(-1)


def _total(terms: Iterable[Tensor]) -> Tensor:
    """Σ ``terms``, added as the builtin ``sum`` adds them (one term per sub-action, and there is at least one)."""
    total = sum(terms)
    assert isinstance(total, Tensor)
    return total


@dataclass
class MultiCategorical:
    """Independent categoricals, one per sub-action; logits ``[B, Σ K_i]``, actions ``[B, n]``."""

    logits: Tensor
    nvec: tuple[int, ...]

    def __post_init__(self) -> None:
        self.parts = [Categorical(x) for x in torch.split(self.logits, list(self.nvec), dim=-1)]

    def sample(self) -> Tensor:
        return torch.stack([p.sample() for p in self.parts], dim=-1)

    def mode(self) -> Tensor:
        return torch.stack([p.mode() for p in self.parts], dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        return _total(p.log_prob(actions[..., i]) for i, p in enumerate(self.parts))

    def entropy(self) -> Tensor:
        return _total(p.entropy() for p in self.parts)

    def kl(self, other: Distribution) -> Tensor:
        """Exact D_KL(self ‖ other): the sum over the sub-actions' categoricals; ``other`` of the same space."""
        assert isinstance(other, MultiCategorical)
        return _total(p.kl(q) for p, q in zip(self.parts, other.parts, strict=False))


@dataclass
class DiagGaussian:
    """N(mean, diag(exp(log_std))²) over ``[B, D]``; log-probs and entropies summed over D."""

    mean: Tensor
    log_std: Tensor

    def sample(self) -> Tensor:
        return self.mean + self.log_std.exp() * torch.randn_like(self.mean)

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, actions: Tensor) -> Tensor:
        z = (actions - self.mean) * (-self.log_std).exp()
        return (-0.5 * z * z - self.log_std - _LOG_SQRT_2PI).sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 + _LOG_SQRT_2PI + self.log_std).expand_as(self.mean).sum(-1)

    def kl(self, other: Distribution) -> Tensor:
        """Exact D_KL(self ‖ other) = Σ_d [log σ_q − log σ_p + (σ_p² + (μ_p − μ_q)²) / (2σ_q²) − ½]; ``other`` of
        the same space."""
        assert isinstance(other, DiagGaussian)
        var_p, var_q = (2 * self.log_std).exp(), (2 * other.log_std).exp()
        return (other.log_std - self.log_std + (var_p + (self.mean - other.mean) ** 2) / (2 * var_q) - 0.5).sum(-1)


Distribution = Categorical | MultiCategorical | DiagGaussian

GSDE_VAR_EPS = 1e-6  # added to gSDE's variance (as SB3's StateDependentNoiseDistribution), so log σ stays finite


def gsde_variance(features: Tensor, std: Tensor) -> Tensor:
    """gSDE's action variance: the noise ε(s) = φ(s)·θ_ε with θ_ε,ij ~ N(0, σ_ij²) independent has

        Var_j(s) = Σ_i φ_i(s)² σ_ij²        (Raffin et al. 2021, §3; independent across the action dims j)

    for features φ(s) ``[B, L]`` and σ ``[L, A]``; returns ``[B, A]``."""
    return (features * features) @ (std * std)


def gsde_noise(features: Tensor, exploration: Tensor) -> Tensor:
    """gSDE's exploration noise ε(s) = φ(s)·θ_ε, one matrix per row: features ``[B, L]``, θ_ε ``[B, L, A]``;
    returns ``[B, A]``."""
    return torch.bmm(features.unsqueeze(1), exploration).squeeze(1)


def sample_exploration(log_std: Tensor, n: int) -> Tensor:
    """``n`` exploration matrices θ_ε ``[n, L, A]`` with θ_ε,ij ~ N(0, σ_ij²), σ = exp(``log_std``) ``[L, A]``,
    drawn from torch's global generator; no gradient (the matrices are sampled, never trained)."""
    with torch.no_grad():
        return log_std.exp() * torch.randn(n, *log_std.shape, device=log_std.device, dtype=log_std.dtype)


def gsde_distribution(mean: Tensor, features: Tensor, log_std: Tensor, learn_features: bool = False) -> DiagGaussian:
    """π(·|s) of a gSDE policy: N(μ(s), Var(s) + 10⁻⁶) with Var(s) of :func:`gsde_variance`, as the exact
    :class:`DiagGaussian` with per-row log σ = ½ log(Var + 10⁻⁶) ``[B, A]``. Means ``[B, A]``, features φ(s)
    ``[B, L]``, ``log_std`` ``[L, A]``. Unless ``learn_features``, φ is detached: the variance trains σ, not the
    trunk (SB3's default)."""
    phi = features if learn_features else features.detach()
    return DiagGaussian(mean, 0.5 * torch.log(gsde_variance(phi, log_std.exp()) + GSDE_VAR_EPS))


def action_param_dim(space: spaces.Space[Any]) -> int:
    """How many numbers the actor head outputs for ``space``; raises for an unsupported space."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        if space.nvec.ndim != 1:
            raise UnsupportedSpaceError(f"MultiDiscrete action spaces must be 1-D, got nvec shape {space.nvec.shape}")
        return int(space.nvec.sum())
    if isinstance(space, spaces.Box):
        if len(space.shape) != 1:
            raise UnsupportedSpaceError(
                f"Box action spaces must be 1-D, got shape {space.shape}; flatten it with "
                "gymnasium.wrappers.FlattenObservation-style action wrapper"
            )
        return int(space.shape[0])
    raise UnsupportedSpaceError(f"action space {space} is not supported; supported: Discrete, MultiDiscrete, Box (1-D)")


def make_distribution(space: spaces.Space[Any], params: Tensor, log_std: Tensor | None) -> Distribution:
    """The action distribution of ``space`` from the actor head's output ``params`` ``[B, action_param_dim]``."""
    if isinstance(space, spaces.Discrete):
        return Categorical(params)
    if isinstance(space, spaces.MultiDiscrete):
        return MultiCategorical(params, tuple(int(n) for n in space.nvec))
    assert log_std is not None
    return DiagGaussian(params, log_std)


def action_shape(space: spaces.Space[Any]) -> tuple[int, ...]:
    """Per-sample shape of a stored action: ``()`` for Discrete, ``(n,)`` otherwise."""
    if isinstance(space, spaces.Discrete):
        return ()
    assert space.shape is not None, f"actions of {space} have no array shape"
    return tuple(space.shape)


def action_dtype(space: spaces.Space[Any]) -> torch.dtype:
    """Storage dtype of actions: int64 for discrete spaces, float32 for Box."""
    return torch.float32 if isinstance(space, spaces.Box) else torch.int64


def to_env_action(space: spaces.Space[Any], actions: Tensor | np.ndarray) -> np.ndarray:
    """Actions as the env expects them; Gaussian samples are clipped to the Box bounds only here."""
    out = actions.numpy() if isinstance(actions, Tensor) else actions
    if isinstance(space, spaces.Box):
        out = np.clip(out, space.low, space.high)
    return out
