"""Actor-critic networks (moved to :mod:`.actor_critic`; this package re-exports them)."""

from .actor_critic import (
    ACTIVATIONS,
    MASKED_LOGIT,
    ActorCritic,
    MultiAgentActorCritic,
    StackedFrames,
    mlp,
    obs_dim,
    warn_if_flattened_image,
)

__all__ = [
    "ACTIVATIONS",
    "MASKED_LOGIT",
    "ActorCritic",
    "MultiAgentActorCritic",
    "StackedFrames",
    "mlp",
    "obs_dim",
    "warn_if_flattened_image",
]
