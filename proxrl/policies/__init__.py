"""Actor-critic networks. :mod:`.actor_critic`: the single-agent :class:`ActorCritic` (MLP trunks, shared or
separate, over an optional encoder and LSTM core); :mod:`.multiagent_actor_critic`: the actors and critics of A
agents; :mod:`.mlp`: the layers both are made of; :mod:`.encoders`: CNN, Dict and user encoders. This package
re-exports their names (``from proxrl.policies import ActorCritic``)."""

from .actor_critic import ActorCritic, obs_dim, warn_if_flattened_image
from .mlp import ACTIVATIONS, mlp, run_layers
from .multiagent_actor_critic import MASKED_LOGIT, MultiAgentActorCritic, StackedFrames

__all__ = [
    "ACTIVATIONS",
    "MASKED_LOGIT",
    "ActorCritic",
    "MultiAgentActorCritic",
    "StackedFrames",
    "mlp",
    "obs_dim",
    "run_layers",
    "warn_if_flattened_image",
]
