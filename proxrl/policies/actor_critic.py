"""Actor-critic networks: MLP trunks (shared or separate), an action head for the env's space, a value head."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from ..errors import RunWarning
from .encoders import NatureCNN, channels_first, image_chw
from ..distributions import Distribution, UnsupportedSpaceError, action_param_dim, make_distribution, to_env_action

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


def warn_if_flattened_image(space: spaces.Space, encoder: nn.Module | None) -> None:
    """Warn when image-like observations (a Box of rank ≥ 2) go flattened into an MLP: ``policy=cnn`` (chosen
    automatically for uint8 images) or a features_extractor is what they need."""
    if encoder is None and isinstance(space, spaces.Box) and len(space.shape) >= 2:
        shape = "×".join(map(str, space.shape))
        warnings.warn(
            f"the observations look like images ({shape} {space.dtype}) and are flattened into an MLP of "
            f"{int(np.prod(space.shape)):,} inputs; set policy=cnn (automatic for uint8 images of at least 36×36 "
            "pixels) or pass a features_extractor",
            RunWarning,
            stacklevel=3,
        )


def obs_dim(space: spaces.Space) -> int:
    """Input width for an observation space: Box is flattened, Discrete one-hot encoded."""
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    raise UnsupportedSpaceError(
        f"observation space {space} is not supported; supported: Box, Discrete "
        "(wrap Dict/Tuple spaces with gymnasium.wrappers.FlattenObservation)"
    )


def mlp(sizes: list[int], activation: str, ortho_init: bool, out_gain: float | None = None) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them (and after the last unless ``out_gain``
    is given, which marks an output layer); orthogonal init with gain √2 for hidden layers."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        if ortho_init:
            nn.init.orthogonal_(lin.weight, out_gain if (last and out_gain is not None) else math.sqrt(2))
            nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not (last and out_gain is not None):
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def _run(seq: nn.Module, x: Tensor) -> Tensor:
    """``seq(x)`` without nn.Module's per-call hook dispatch, which dominates tiny MLPs on the CPU."""
    if isinstance(seq, nn.Sequential):
        for layer in seq:
            x = layer.forward(x)
        return x
    return seq(x)


class ActorCritic(nn.Module):
    """π_θ(a|s) and V_w(s) for one gymnasium observation and action space.

    An ``encoder`` (:mod:`proxrl.policies.encoders`: CNN, Dict, a user module) turns observations into features
    first; without one they are flattened. ``shared_trunk`` puts both heads on one MLP; otherwise actor and critic
    have their own. Box actions use a
    diagonal Gaussian with a state-independent log-std parameter; samples are not clipped here (only when sent
    to the env), so log-probs stay those of the distribution. Observations ``[B, *obs_shape]``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: str = "tanh",
        shared_trunk: bool = False,
        log_std_init: float = 0.0,
        ortho_init: bool = True,
        encoder: nn.Module | None = None,
        lstm_hidden_size: int | None = None,
    ) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.encoder = encoder  # shared by actor and critic (as SB3's on-policy default and CleanRL's Atari PPO)
        in_dim = int(encoder.features_dim) if encoder is not None else obs_dim(observation_space)
        # the recurrent core (CleanRL's ppo_atari_lstm: encoder → LSTM → trunks and heads), shared by actor and critic
        self.core = nn.LSTM(in_dim, lstm_hidden_size) if lstm_hidden_size else None
        if self.core is not None:
            for name, param in self.core.named_parameters():
                nn.init.orthogonal_(param, 1.0) if "weight" in name else nn.init.zeros_(param)
            in_dim = int(lstm_hidden_size)  # type: ignore[arg-type]
        n_params = action_param_dim(action_space)
        hidden = list(hidden_sizes)
        width = hidden[-1] if hidden else in_dim
        self.one_hot = isinstance(observation_space, spaces.Discrete)
        self.actor_trunk = mlp([in_dim, *hidden], activation, ortho_init) if hidden else nn.Identity()
        self.critic_trunk = (
            None if shared_trunk else (mlp([in_dim, *hidden], activation, ortho_init) if hidden else nn.Identity())
        )
        self.actor_head = mlp([width, n_params], activation, ortho_init, out_gain=0.01)
        self.critic_head = mlp([width, 1], activation, ortho_init, out_gain=1.0)
        self.log_std = (
            nn.Parameter(torch.full((n_params,), float(log_std_init))) if isinstance(action_space, spaces.Box) else None
        )

    def _features(self, obs: Tensor) -> Tensor:
        if self.encoder is not None:
            return self.encoder(obs)
        if self.one_hot:
            return nn.functional.one_hot(obs.long().reshape(-1), self.observation_space.n).float()  # type: ignore[attr-defined]
        x = obs.reshape(obs.shape[0], -1)
        return x if x.dtype == torch.float32 else x.float()

    def _stateless(self, obs: Tensor) -> Tensor:
        """The trunks' input for observations seen without a state: the features, through the recurrent core from
        the zero state if there is one (the first step of an episode)."""
        x = self._features(obs)
        if self.core is None:
            return x
        return self._core_step(x, self.initial_state(x.shape[0], x.device), None)[0]

    def forward(self, obs: Tensor) -> tuple[Distribution, Tensor]:
        """π(·|s) and V(s) ``[B]``."""
        return self._heads(self._stateless(obs))

    def action_params(self, obs: Tensor) -> Tensor:
        """The actor head's output (logits, or Gaussian means) ``[B, action_param_dim]``."""
        return _run(self.actor_head, _run(self.actor_trunk, self._stateless(obs)))

    def distribution(self, obs: Tensor) -> Distribution:
        """π(·|s) without computing the value."""
        return make_distribution(self.action_space, self.action_params(obs), self.log_std)

    def value(self, obs: Tensor) -> Tensor:
        """V(s) ``[B]``."""
        x = self._stateless(obs)
        h = _run(self.actor_trunk if self.critic_trunk is None else self.critic_trunk, x)
        return _run(self.critic_head, h).squeeze(-1)

    def act(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Sample a ~ π(·|s); returns (actions, log π(a|s) ``[B]``, V(s) ``[B]``)."""
        dist, value = self.forward(obs)
        actions = dist.sample()
        return actions, dist.log_prob(actions), value

    # ---- a recurrent core: the state (h, c) is [B, H] each; ``keep`` [B] is False where an episode starts
    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """The zero state (h, c) of the LSTM core for ``batch`` envs."""
        assert self.core is not None
        zeros = torch.zeros(batch, self.core.hidden_size, device=device)
        return zeros, zeros.clone()

    def _core_step(self, x: Tensor, state: tuple[Tensor, Tensor], keep: Tensor | None) -> tuple[Tensor, Any]:
        assert self.core is not None
        h, c = state
        if keep is not None:
            k = keep.to(h.dtype)[:, None]
            h, c = h * k, c * k
        out, (h, c) = self.core(x[None], (h[None], c[None]))
        return out[0], (h[0], c[0])

    def _heads(self, y: Tensor) -> tuple[Distribution, Tensor]:
        h = _run(self.actor_trunk, y)
        value = _run(self.critic_head, h if self.critic_trunk is None else _run(self.critic_trunk, y)).squeeze(-1)
        return make_distribution(self.action_space, _run(self.actor_head, h), self.log_std), value

    def act_recurrent(
        self, obs: Tensor, state: tuple[Tensor, Tensor], keep: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor]]:
        """One step of a recurrent policy: a ~ π(·|s, h), log π, V, and the next state (reset where ``keep`` is
        False first)."""
        y, state = self._core_step(self._features(obs), state, keep)
        dist, value = self._heads(y)
        actions = dist.sample()
        return actions, dist.log_prob(actions), value, state

    def value_recurrent(self, obs: Tensor, state: tuple[Tensor, Tensor]) -> Tensor:
        """V(s, h) ``[B]`` with the state as it is (for bootstrapping)."""
        return self._heads(self._core_step(self._features(obs), state, None)[0])[1]

    def sequence(
        self, obs: Tensor, state: tuple[Tensor, Tensor], starts: Tensor
    ) -> tuple[Distribution, Tensor, tuple[Tensor, Tensor]]:
        """A rollout replayed through the core: observations ``[T, B, ...]`` from the state it began with, reset
        where ``starts`` ``[T, B]``; π and V for the ``T·B`` rows (time-major), and the final state."""
        t, b = starts.shape
        x = self._features(obs.reshape(t * b, *obs.shape[2:])).reshape(t, b, -1)
        outs = []
        for step in range(t):
            y, state = self._core_step(x[step], state, ~starts[step])
            outs.append(y)
        dist, value = self._heads(torch.cat(outs))
        return dist, value, state

    @torch.no_grad()
    def env_actions_recurrent(
        self, obs: Tensor, state: tuple[Tensor, Tensor], deterministic: bool = True
    ) -> tuple[np.ndarray, tuple[Tensor, Tensor]]:
        """:meth:`env_actions` of a recurrent policy: the actions and the next state."""
        y, state = self._core_step(self._features(obs), state, None)
        dist, _ = self._heads(y)
        return to_env_action(self.action_space, (dist.mode() if deterministic else dist.sample()).cpu()), state

    @torch.no_grad()
    def env_actions(self, obs: Tensor, deterministic: bool = True) -> np.ndarray:
        """Actions ready for the env (mode or sample of π(·|s); Box actions clipped to bounds), ``[B, ...]``."""
        dist = self.distribution(obs)
        return to_env_action(self.action_space, (dist.mode() if deterministic else dist.sample()).cpu())

    def evaluate(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log π(a|s), H(π(·|s)), V(s)), each ``[B]``, for stored actions."""
        dist, value = self.forward(obs)
        return dist.log_prob(actions), dist.entropy(), value


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
        action_spaces: list[spaces.Space],
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
        first = action_spaces[0]
        if isinstance(first, spaces.Discrete) and all(isinstance(s, spaces.Discrete) for s in action_spaces):
            self.n_params = max(int(s.n) for s in action_spaces)
            self.space: spaces.Space = spaces.Discrete(self.n_params)
        elif isinstance(first, spaces.Box) and all(
            isinstance(s, spaces.Box) and s.shape == first.shape for s in action_spaces
        ):
            self.n_params, self.space = action_param_dim(first), first
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
        if image_shape is not None and agent_id:
            raise UnsupportedSpaceError(
                "agent_id is not supported with the CNN on image observations (the one-hot cannot join the "
                "pixels); set agent_id=false"
            )
        self.image_shape = image_shape
        extra = n if agent_id else 0
        widths = [max(obs_dims) + extra] * n if share_actor else [d + extra for d in obs_dims]
        hidden = list(hidden_sizes)

        def net(in_dim: int, out: int, gain: float, encoder: nn.Module | None = None) -> nn.Sequential:
            if image_shape is not None and encoder is None:  # a flat uint8 row → its image → the Nature CNN
                encoder = nn.Sequential(
                    nn.Unflatten(1, image_shape), NatureCNN(spaces.Box(0, 255, image_shape, np.uint8), image_channels)
                )
            width = in_dim if encoder is None else 512
            return nn.Sequential(
                *([] if encoder is None else [encoder]),
                *mlp([width, *hidden], activation, ortho_init),
                *mlp([hidden[-1] if hidden else width, out], activation, ortho_init, gain),
            )

        self.actors = nn.ModuleList([net(w, self.n_params, 0.01) for w in widths[: 1 if share_actor else n]])
        self.log_stds = nn.ParameterList(
            [nn.Parameter(torch.full((self.n_params,), float(log_std_init))) for _ in self.actors]
            if isinstance(self.space, spaces.Box)
            else []
        )
        if critic == "central" and image_shape is not None:  # V(every agent's frame, stacked along channels)
            stack = StackedFrames(n, image_shape, image_channels)
            self.critics = nn.ModuleList([net(0, 1, 1.0, nn.Sequential(stack, NatureCNN(stack.space, "first")))])
        elif critic == "central":
            self.critics = nn.ModuleList([net(state_dim, 1, 1.0)])
        else:
            self.critics = nn.ModuleList([net(w, 1, 1.0) for w in widths[: 1 if share_actor else n]])

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
            params = _run(self.actors[0], x.reshape(-1, x.shape[-1])).reshape(x.shape[0], len(agents), -1)
        else:
            params = torch.stack([_run(self.actors[i], xs[i]) for i in agents], 1)
        if isinstance(self.space, spaces.Discrete):
            sizes = torch.tensor([int(self.action_spaces[i].n) for i in agents], device=obs.device)
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
            return _run(self.critics[0], state if self.image_shape is None else obs).expand(-1, self.n_agents)
        xs = self._inputs(obs)
        nets = [self.critics[0] if self.share_actor else self.critics[i] for i in range(self.n_agents)]
        return torch.cat([_run(c, x) for c, x in zip(nets, xs, strict=True)], 1)

    def actor_parameters(self, agent: int | None = None) -> list[nn.Parameter]:
        """The parameters of agent ``agent``'s actor (all actors' when None or when the actor is shared)."""
        if agent is None or self.share_actor:
            return list(self.actors.parameters()) + list(self.log_stds)
        return list(self.actors[agent].parameters()) + ([self.log_stds[agent]] if len(self.log_stds) else [])

    def critic_parameters(self) -> list[nn.Parameter]:
        """The critics' parameters."""
        return list(self.critics.parameters())
