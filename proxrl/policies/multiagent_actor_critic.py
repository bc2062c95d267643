"""The multi-agent actor-critic: actors π_i(a|o_i) and local or central critics for A agents, batched as
``[B, A, ...]``, and :class:`StackedFrames`, the joint image a central critic's CNN reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from ..distributions import Distribution, UnsupportedSpaceError, action_param_dim, make_distribution
from .encoders import NatureCNN, channels_first, image_chw
from .mlp import mlp, run_layers

MASKED_LOGIT = -1e9  # a masked action's logit: probability 0, and 0 · log p stays finite in the entropy


class StackedFrames(nn.Module):
    """Every agent's flat uint8 frame ``[B, A, H·W·C]`` → one image ``[B, A·C, H, W]``: the agents' channels side
    by side, what a central critic's CNN sees of the joint observation when the observations are images."""

    def __init__(self, n_agents: int, image_shape: tuple[int, ...], image_channels: str = "auto") -> None:
        super().__init__()
        self.shape = tuple(image_shape)
        self.first = channels_first(self.shape, image_channels)
        c, h, w = image_chw(self.shape, self.first)
        self.space = spaces.Box(0, 255, (n_agents * c, h, w), np.uint8)

    def forward(self, obs: Tensor) -> Tensor:
        x = obs.reshape(obs.shape[0], obs.shape[1], *self.shape)
        if len(self.shape) == 3 and not self.first:
            x = x.permute(0, 1, 4, 2, 3)
        return x.reshape(obs.shape[0], *self.space.shape)


class MultiAgentActorCritic(nn.Module):
    """Actors π_i(a|o_i) and critics for A agents, batched as ``[B, A, ...]``.

    ``share_actor``: one actor for every agent (observations zero-padded to the widest; optionally a one-hot agent
    id appended); else one actor per agent on its own observation width (heterogeneous agents). ``critic``:
    ``local`` V_i(o_i) (shared iff the actor is) or ``central`` one V(global state) for all agents. Action spaces:
    Discrete (sizes may differ: logits are padded with a masked value) or Box of one shape.
    """

    def __init__(
        self,
        obs_dims: list[int],
        action_spaces: list[spaces.Space[Any]],
        state_dim: int,
        share_actor: bool,
        agent_id: bool,
        critic: str,
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: str = "tanh",
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        image_shape: tuple[int, ...] | None = None,
        image_channels: str = "auto",
    ) -> None:
        super().__init__()
        n = len(obs_dims)
        self.n_agents, self.obs_dims, self.action_spaces = n, list(obs_dims), list(action_spaces)
        self.share_actor, self.agent_id, self.critic_kind = share_actor, agent_id, critic
        self.n_params, self.space = _joint_action_space(action_spaces, share_actor)
        if image_shape is not None and agent_id:
            raise UnsupportedSpaceError(
                "agent_id is not supported with the CNN on image observations (the one-hot cannot join the "
                "pixels); set agent_id=false"
            )
        self.image_shape = image_shape
        extra = n if agent_id else 0
        widths = [max(obs_dims) + extra] * n if share_actor else [d + extra for d in obs_dims]
        nets = _Networks(tuple(hidden_sizes), activation, ortho_init, image_shape, image_channels)
        # built in this order (actors, log-stds, critics): the seeded initial weights and the parameters' order
        self.actors = nn.ModuleList([nets.build(w, self.n_params, 0.01) for w in widths[: 1 if share_actor else n]])
        self.log_stds = nn.ParameterList(
            [nn.Parameter(torch.full((self.n_params,), float(log_std_init))) for _ in self.actors]
            if isinstance(self.space, spaces.Box)
            else []
        )
        if critic == "central" and image_shape is not None:  # V(every agent's frame, stacked along channels)
            stack = StackedFrames(n, image_shape, image_channels)
            self.critics = nn.ModuleList([nets.build(0, 1, 1.0, nn.Sequential(stack, NatureCNN(stack.space, "first")))])
        elif critic == "central":
            self.critics = nn.ModuleList([nets.build(state_dim, 1, 1.0)])
        else:
            self.critics = nn.ModuleList([nets.build(w, 1, 1.0) for w in widths[: 1 if share_actor else n]])

    def _inputs(self, obs: Tensor) -> list[Tensor]:
        """Per-agent network inputs from padded observations ``[B, A, D]``: [B, width_i] each."""
        b, n = obs.shape[0], self.n_agents
        xs = []
        for i in range(n):
            x = obs[:, i] if self.share_actor else obs[:, i, : self.obs_dims[i]]
            if self.agent_id:
                x = torch.cat([x, torch.zeros(b, n, device=obs.device).index_fill_(1, torch.tensor([i]), 1.0)], 1)
            xs.append(x)
        return xs

    def distribution(self, obs: Tensor, masks: Tensor | None = None, agents: list[int] | None = None) -> Distribution:
        """π_i(·|o_i) for the ``agents`` (default all) as one distribution over ``[B, len(agents)]``;
        ``masks`` ``[B, A, n]`` bool marks the legal actions (PettingZoo's ``action_mask``)."""
        agents = list(range(self.n_agents)) if agents is None else agents
        xs = self._inputs(obs)
        if self.share_actor:
            x = torch.stack([xs[i] for i in agents], 1)
            params = run_layers(self.actors[0], x.reshape(-1, x.shape[-1])).reshape(x.shape[0], len(agents), -1)
        else:
            params = torch.stack([run_layers(self.actors[i], xs[i]) for i in agents], 1)
        if isinstance(self.space, spaces.Discrete):
            n_actions = [int(cast(spaces.Discrete, self.action_spaces[i]).n) for i in agents]
            sizes = torch.tensor(n_actions, device=obs.device)
            legal = torch.arange(self.n_params, device=obs.device) < sizes[:, None]
            if masks is not None:
                legal = legal & masks[:, agents].bool()
            params = params.masked_fill(~legal, MASKED_LOGIT)
            return make_distribution(self.space, params, None)
        log_std = self.log_stds[0] if self.share_actor else torch.stack([self.log_stds[i] for i in agents])
        return make_distribution(self.space, params, log_std)

    def value(self, obs: Tensor, state: Tensor) -> Tensor:
        """V ``[B, A]``: V_i(o_i), or the central V(state) repeated for every agent."""
        if self.critic_kind == "central":
            return run_layers(self.critics[0], state if self.image_shape is None else obs).expand(-1, self.n_agents)
        xs = self._inputs(obs)
        nets = [self.critics[0] if self.share_actor else self.critics[i] for i in range(self.n_agents)]
        return torch.cat([run_layers(c, x) for c, x in zip(nets, xs, strict=True)], 1)

    def actor_parameters(self, agent: int | None = None) -> list[nn.Parameter]:
        """The parameters of agent ``agent``'s actor (all actors' when None or when the actor is shared)."""
        if agent is None or self.share_actor:
            return list(self.actors.parameters()) + list(self.log_stds)
        return list(self.actors[agent].parameters()) + ([self.log_stds[agent]] if len(self.log_stds) else [])

    def critic_parameters(self) -> list[nn.Parameter]:
        """The critics' parameters."""
        return list(self.critics.parameters())


def _joint_action_space(action_spaces: list[spaces.Space[Any]], share_actor: bool) -> tuple[int, spaces.Space[Any]]:
    """(the actor head's width, the one space every agent's actions are sampled in): Discrete spaces of any sizes
    (logits padded to the largest, the rest masked), or Box spaces of one shape; a shared actor needs one space."""
    first = action_spaces[0]
    space: spaces.Space[Any]
    if isinstance(first, spaces.Discrete) and all(isinstance(s, spaces.Discrete) for s in action_spaces):
        n_params = max(int(cast(spaces.Discrete, s).n) for s in action_spaces)
        space = spaces.Discrete(n_params)
    elif isinstance(first, spaces.Box) and all(
        isinstance(s, spaces.Box) and s.shape == first.shape for s in action_spaces
    ):
        n_params, space = action_param_dim(first), first
    else:
        raise UnsupportedSpaceError(
            f"multi-agent action spaces {action_spaces} are not supported: every agent "
            "needs a Discrete space, or Box spaces of one shape"
        )
    if share_actor and any(s != first for s in action_spaces):
        raise UnsupportedSpaceError(
            "a shared actor needs every agent to have the same action space; set "
            "share_actor=false for heterogeneous agents"
        )
    return n_params, space


@dataclass(frozen=True)
class _Networks:
    """How every actor and critic of a :class:`MultiAgentActorCritic` is built: an MLP of ``hidden`` layers, behind
    the Nature CNN when the observations are images of ``image_shape``."""

    hidden: tuple[int, ...]
    activation: str
    ortho_init: bool
    image_shape: tuple[int, ...] | None
    image_channels: str

    def build(self, in_dim: int, out: int, gain: float, encoder: nn.Module | None = None) -> nn.Sequential:
        """A network ``in_dim`` → ``out`` (output layer's init gain ``gain``), after ``encoder`` if given."""
        hidden, image_shape = list(self.hidden), self.image_shape
        if image_shape is not None and encoder is None:  # a flat uint8 row → its image → the Nature CNN
            encoder = nn.Sequential(
                nn.Unflatten(1, image_shape),
                NatureCNN(spaces.Box(0, 255, image_shape, np.uint8), self.image_channels),
            )
        width = in_dim if encoder is None else 512
        return nn.Sequential(
            *([] if encoder is None else [encoder]),
            *mlp([width, *hidden], self.activation, self.ortho_init),
            *mlp([hidden[-1] if hidden else width, out], self.activation, self.ortho_init, gain),
        )
