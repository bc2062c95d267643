"""The multi-agent networks for an environment's agents and a method: actors (shared or one per agent) and the
critic (local or central), with the parameter groups that each get their own Adam."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..policies import MultiAgentActorCritic
from ..policies.encoders import set_cnn_precision
from .envs import AgentSpec


def build_networks(spec: AgentSpec, cfg: Any) -> tuple[MultiAgentActorCritic, bool, dict[str, list[nn.Parameter]]]:
    """(policy, whether the actor is shared, parameter groups ``actor_<i>``… and ``critic``) for ``cfg.method``:
    ``ippo`` local critics V_i(o_i), ``mappo``/``happo`` one central V(s). ``share_actor`` None shares the actor
    for MAPPO where every agent has the same spaces (MAPPO's parameter sharing), never for IPPO and HAPPO."""
    homogeneous = len(set(spec.obs_dims)) == 1 and all(s == spec.action_spaces[0] for s in spec.action_spaces)
    share = (cfg.method == "mappo" and homogeneous) if cfg.share_actor is None else cfg.share_actor
    policy = MultiAgentActorCritic(
        spec.obs_dims,
        spec.action_spaces,
        spec.state_dim,
        share,
        cfg.agent_id,
        "local" if cfg.method == "ippo" else "central",
        cfg.hidden_sizes,
        cfg.activation,
        cfg.ortho_init,
        cfg.log_std_init,
        spec.image_shape,
        cfg.image_channels,
    )
    set_cnn_precision(policy, cfg.cnn_precision)
    groups = {
        f"actor_{i}": policy.actor_parameters(None if share else i) for i in range(1 if share else len(spec.names))
    }
    groups["critic"] = policy.critic_parameters()
    return policy, share, groups
