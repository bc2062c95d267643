"""One line saying which network a run builds (issue 33: ``policy: auto`` picks the Nature CNN for Atari frames, the
flattening MLP for vectors, one encoder per key for Dict spaces; the user should not have to guess)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from torch import nn

from .actor_critic import ActorCritic
from .encoders import DictEncoder, DictInput, NatureCNN


def _shape(space: spaces.Space[Any]) -> str:
    """``4×84×84 uint8`` for a Box, ``Discrete(16)`` otherwise."""
    if isinstance(space, spaces.Box):
        return f"{'×'.join(map(str, space.shape))} {space.dtype}"
    return str(space)


def describe_encoder(encoder: nn.Module | None, space: spaces.Space[Any]) -> str:
    """What turns observations of ``space`` into the trunks' input."""
    if encoder is None:
        if isinstance(space, spaces.Discrete):
            return f"one-hot {space.n} states"
        return f"observations {_shape(space)} flattened ({int(np.prod(space.shape or (1,)))} inputs)"
    if isinstance(encoder, NatureCNN):
        return f"Nature CNN (3 conv layers → {encoder.features_dim} features) on {_shape(space)} images"
    if isinstance(encoder, DictEncoder):
        kinds = [f"{k}: CNN" if k in encoder.encoders else k for k in encoder.layout.space.spaces]
        return f"one encoder per Dict key ({', '.join(kinds)}) → {encoder.features_dim} features"
    inner = encoder.module if isinstance(encoder, DictInput) else encoder
    return f"your features_extractor {type(inner).__name__}"


def describe_network(policy: nn.Module, activation: str) -> str:
    """``network: …``: encoder, recurrent core, MLP trunks, action head and parameter count of ``policy``."""
    n = sum(p.numel() for p in policy.parameters())
    if not isinstance(policy, ActorCritic):  # the multi-agent actors and critics
        return f"network: {type(policy).__name__}, {n:,} parameters"
    parts = [describe_encoder(policy.encoder, policy.observation_space)]
    if policy.core is not None:
        parts.append(f"LSTM core of {policy.core.hidden_size} units")
    widths = [m.out_features for m in policy.actor_trunk.modules() if isinstance(m, nn.Linear)]
    shared = "one shared MLP" if policy.critic_trunk is None else "actor and critic MLPs"
    parts.append(f"{shared} {widths} {activation}" if widths else "linear heads")
    act = policy.action_space
    parts.append(
        f"Gaussian over {int(np.prod(act.shape))} actions "
        + ("(gSDE: state-dependent noise φ(s)·θ_ε)" if policy.use_sde else "(state-independent log σ)")
        if isinstance(act, spaces.Box)
        else f"categorical head over {act}"
    )
    return f"network: {' → '.join(parts)}; {n:,} parameters"
