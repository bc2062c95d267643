"""What a run does to its env's observations and rewards before the policy sees them: the rule that turns
normalisation on where it is needed (``norm_obs`` / ``norm_reward`` left unset), and the line ``proxrl train``
prints about it.

The rule (issue 33, "defaults that fail less"): a vector of floats whose bounds say it is unbounded or badly scaled
is normalised, observations and rewards alike, as rl-baselines3-zoo's ``normalize: true`` does for MuJoCo, Acrobot
and MountainCar. MountainCarContinuous-v0 (position in [-1.2, 0.6], velocity in [-0.07, 0.07]) learns to stand still
on every seed without it and reaches 93 with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from . import atari

SCALE_LIMIT = 10.0  # a bound beyond ±10 (the normalisers' clip), or component ranges more than 10× apart


def badly_scaled(space: spaces.Space[Any]) -> bool:
    """True for a 1-D float Box that is unbounded (an infinite bound), reaches beyond ±``SCALE_LIMIT``, or whose
    components' ranges differ by more than ``SCALE_LIMIT``×; False for anything else (images, Discrete, Dict)."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 1 or not np.issubdtype(space.dtype, np.floating):
        return False
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        return True
    if np.abs(np.concatenate([low, high])).max() > SCALE_LIMIT:
        return True
    ranges = (high - low)[high > low]  # a constant component has no scale to compare
    return bool(ranges.size and ranges.max() / ranges.min() > SCALE_LIMIT)


def describe_preprocessing(env: str, norm_obs: bool, norm_reward: bool, decided: bool) -> str:
    """``preprocessing: …``: the Atari wrappers and the normalisers a run on ``env`` uses (``decided``: the
    normalisation was chosen by :func:`badly_scaled`, not set)."""
    parts = [atari.PREPROCESSING] if atari.is_atari(env.rpartition(":")[2]) else []
    if norm_obs:
        parts.append("observations normalised by running mean and std, clipped to ±10")
    if norm_reward:
        parts.append("rewards scaled by the std of a running discounted return, clipped to ±10")
    why = (
        " (norm_obs/norm_reward unset: on because the observation space is unbounded or badly scaled)"
        if decided and (norm_obs or norm_reward)
        else ""
    )
    return "preprocessing: " + ("; ".join(parts) if parts else "none") + why
