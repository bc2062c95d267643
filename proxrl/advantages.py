"""Advantage and return estimators: pure functions on time-major tensors ``[T, N]``.

Conventions (DESIGN rule 7): ``next_values[t]`` is V(s_{t+1}) of the observation the env returned after step t,
which on a truncation is the real final observation. ``terminated[t]`` stops bootstrapping (V(s_{t+1}) := 0);
``done[t] = terminated[t] | truncated[t]`` stops the recursion, so no estimate leaks across an episode end.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_time_major(**tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    first = next(iter(shapes.values()))
    assert all(s == first for s in shapes.values()), f"shapes differ: {shapes}"
    assert len(first) >= 1, "expected time-major tensors [T, ...]"


def td_residual(rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor, *, gamma: float) -> Tensor:
    """TD residual δ_t = r_t + γ (1 − terminated_t) V(s_{t+1}) − V(s_t).  All tensors ``[T, N]``."""
    _check_time_major(rewards=rewards, values=values, next_values=next_values, terminated=terminated)
    return rewards + gamma * (1.0 - terminated.float()) * next_values - values


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    *,
    gamma: float,
    gae_lambda: float,
    mask: Tensor | None = None,
) -> Tensor:
    """Generalised advantage estimation, Â_t = Σ_l (γλ)^l δ_{t+l}, cut at episode ends (Schulman et al. 2015).

    Recursively Â_t = δ_t + γλ (1 − done_t) Â_{t+1} with done = terminated ∨ truncated; the last step of the
    rollout bootstraps only through δ. λ = 0 gives δ; γ = λ = 1 gives (Monte-Carlo return) − V.

    ``mask`` (bool, default all true) marks the rows that belong to the column's episode: a row outside it (a
    gymnasium reset step, another player's turn, an agent that has left) gets Â = 0 and the recursion passes over
    it, so Â_next is the column's next masked-in row. ``next_values[t]`` is then V of the state the column's
    next action sees (the collector's job: see ``rollout.py``). Shapes: every argument ``[T, ...]``; returns the
    same shape.
    """
    _check_time_major(
        rewards=rewards, values=values, next_values=next_values, terminated=terminated, truncated=truncated
    )
    delta = td_residual(rewards, values, next_values, terminated, gamma=gamma)
    carry = gamma * gae_lambda * (1.0 - (terminated | truncated).float())
    adv = torch.empty_like(delta)
    last = torch.zeros_like(delta[0])
    if mask is None:
        for t in range(delta.shape[0] - 1, -1, -1):
            last = delta[t] + carry[t] * last
            adv[t] = last
        return adv
    _check_time_major(rewards=rewards, mask=mask)
    zero = torch.zeros_like(last)
    for t in range(delta.shape[0] - 1, -1, -1):
        step = delta[t] + carry[t] * last
        adv[t] = torch.where(mask[t], step, zero)
        last = torch.where(mask[t], step, last)
    return adv


def discounted_returns(
    rewards: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    *,
    gamma: float,
    next_values: Tensor | None = None,
) -> Tensor:
    """Monte-Carlo reward-to-go G_t = Σ_k γ^k r_{t+k}, summed to the end of each episode.

    Without ``next_values``, G is the plain return of the observed rewards (an episode cut by the rollout's end
    or a truncation simply stops). With ``next_values`` (V(s_{t+1}), ``[T, N]``), a truncated episode and one
    still running at the rollout's end are bootstrapped with γ V(s_{t+1}); a terminated one never is.
    Shapes: ``[T, N]`` in and out.
    """
    _check_time_major(rewards=rewards, terminated=terminated, truncated=truncated)
    done = (terminated | truncated).float()
    # gymnasium's TimeLimit sets both flags when an episode terminates on its last allowed step: termination wins
    bootstrap = (truncated & ~terminated).float()
    returns = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0]) if next_values is None else next_values[-1] * (1.0 - done[-1])
    for t in range(rewards.shape[0] - 1, -1, -1):
        tail = running * (1.0 - done[t])
        if next_values is not None:
            tail = tail + bootstrap[t] * next_values[t]
        running = rewards[t] + gamma * tail
        returns[t] = running
    return returns


def normalize(x: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """(x − mean) / (std + eps) over the entries where ``mask`` is true (all entries by default)."""
    if mask is None:
        return (x - x.mean()) / (x.std() + eps)
    sel = x[mask]
    return (x - sel.mean()) / (sel.std() + eps)


def vtrace(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    log_rhos: Tensor,
    *,
    gamma: float,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """V-trace (Espeholt et al. 2018): off-policy targets for V^π from a behaviour policy's rollout, and the
    action-value estimate Q̂ the off-policy gradient multiplies.

    With ρ_t = min(ρ̄, π/β), c_t = min(c̄, π/β) (``log_rhos`` = log π − log β) and
    δ_t = ρ_t (r_t + γ V(s_{t+1}) − V(s_t)):  v_t = V(s_t) + δ_t + γ c_t (v_{t+1} − V(s_{t+1})), cut at episode ends;
    Q̂(s_t, a_t) = r_t + γ v_{t+1} (no bootstrap after a termination; V(final obs) after a truncation).
    On-policy (π = β) with ρ̄, c̄ ≥ 1, v_t is the Monte-Carlo return bootstrapped at the rollout's end.
    Returns (v ``[T, N]``, Q̂ ``[T, N]``).
    """
    _check_time_major(
        rewards=rewards,
        values=values,
        next_values=next_values,
        terminated=terminated,
        truncated=truncated,
        log_rhos=log_rhos,
    )
    ratio = log_rhos.exp()
    rho, c = ratio.clamp(max=rho_bar), ratio.clamp(max=c_bar)
    not_term = 1.0 - terminated.float()
    carry = 1.0 - (terminated | truncated).float()
    delta = rho * (rewards + gamma * not_term * next_values - values)
    acc = torch.zeros_like(rewards[0])
    v_minus_value = torch.empty_like(rewards)
    for t in range(rewards.shape[0] - 1, -1, -1):
        acc = delta[t] + gamma * c[t] * carry[t] * acc
        v_minus_value[t] = acc
    v = values + v_minus_value
    v_next = torch.cat([v[1:], next_values[-1:]])
    v_next = torch.where(carry.bool(), v_next, next_values)  # at an episode end: V(final obs), never v of a reset
    return v, rewards + gamma * not_term * v_next


REWARD_SCALINGS = ("group", "batch", "none")


def group_relative(rewards: Tensor, scale: str = "group", eps: float = 1e-4) -> Tensor:
    """GRPO's group-relative advantage Â_i = (r_i − mean(r)) / (std(r) + eps) within each group (the seed's
    GRPO section), for rewards ``[P, G]``: P prompts × G completions each.

    ``scale``: ``group`` divides by each group's (unbiased) std as in the paper; ``batch`` by the std of all
    P·G rewards; ``none`` only centres (Dr. GRPO: dividing by the std over-weights groups that are almost all
    right or all wrong). A group whose rewards are all equal gets Â = 0: it contributes no gradient. A NaN reward
    (a completion no reward function scored) is left out of the means and stds and gets Â = 0, as in TRL 1.16.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [prompts, group_size], got shape {tuple(rewards.shape)}")
    if scale not in REWARD_SCALINGS:
        raise ValueError(f"unknown reward scaling {scale!r}; allowed: {', '.join(REWARD_SCALINGS)}")
    if bool(rewards.isnan().any()):
        return _group_relative_of_scored(rewards, scale, eps)
    # in floating point the mean of G equal rewards can differ from them (8 × 7.3 in float32 is off by ~5e-7,
    # which the std then blows up): a flat group is centred to exactly 0, not to its rounding error
    centred = torch.where(
        flat_groups(rewards).unsqueeze(1), torch.zeros_like(rewards), rewards - rewards.mean(dim=1, keepdim=True)
    )
    if scale == "group":
        std = rewards.std(dim=1, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(rewards[:, :1])
        return centred / (std + eps)  # a flat group: 0 / (std + eps) = 0 exactly
    if scale == "batch":
        return centred / ((rewards.std() if rewards.numel() > 1 else rewards.new_zeros(())) + eps)
    if scale == "none":
        return centred
    raise ValueError(f"unknown reward scaling {scale!r}; allowed: {', '.join(REWARD_SCALINGS)}")


def _group_relative_of_scored(rewards: Tensor, scale: str, eps: float) -> Tensor:
    """:func:`group_relative` over the rewards that are not NaN (TRL 1.16's unscorable completions: its nanmean and
    Bessel-corrected nanstd); a NaN reward, and every reward of a group with one score or none, gets Â = 0."""
    scored = ~rewards.isnan()
    lowest = rewards.nan_to_num(nan=math.inf).amin(dim=1, keepdim=True)
    highest = rewards.nan_to_num(nan=-math.inf).amax(dim=1, keepdim=True)
    flat = lowest == highest  # the scores given are all equal: centred to exactly 0, as a flat group
    centred = torch.where(flat, torch.zeros_like(rewards), rewards - rewards.nanmean(dim=1, keepdim=True))
    if scale == "group":
        centred = centred / (_nanstd(rewards, dim=1) + eps)
    elif scale == "batch":
        centred = centred / (_nanstd(rewards.reshape(1, -1), dim=1) + eps)
    return torch.where(scored, centred, torch.zeros_like(rewards)).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


def _nanstd(values: Tensor, dim: int) -> Tensor:
    """The unbiased std along ``dim`` of the values that are not NaN (NaN where fewer than two), kept as a dim."""
    count = (~values.isnan()).sum(dim=dim, keepdim=True)
    squares = (values - values.nanmean(dim=dim, keepdim=True)) ** 2
    variance = squares.nansum(dim=dim, keepdim=True) / (count - 1).clamp(min=1)
    return torch.where(count > 1, variance.sqrt(), torch.full_like(variance, math.nan))


def flat_groups(rewards: Tensor) -> Tensor:
    """Which groups of ``rewards`` ``[P, G]`` hold G equal rewards (``[P]`` bool): they get Â = 0 and give GRPO no
    gradient. Compared exactly, not by std == 0, which float rounding of the mean can miss."""
    return (rewards == rewards[:, :1]).all(dim=1)
