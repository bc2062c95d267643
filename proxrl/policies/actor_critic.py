"""The single-agent actor-critic: π_θ(a|s) and V_w(s) for one gymnasium observation and action space, MLP trunks
(shared or separate) over an optional encoder and LSTM core, an action head for the space, a value head."""

from __future__ import annotations

import warnings
from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from ..distributions import (
    DiagGaussian,
    Distribution,
    UnsupportedSpaceError,
    action_param_dim,
    gsde_distribution,
    gsde_noise,
    make_distribution,
    sample_exploration,
    to_env_action,
)
from ..errors import RunWarning
from .mlp import mlp, run_layers


def warn_if_flattened_image(space: spaces.Space[Any], encoder: nn.Module | None) -> None:
    """Warn when image-like observations (a Box of rank ≥ 2) go flattened into an MLP: a CNN (chosen
    automatically for uint8 images) or a features_extractor is what they need."""
    if encoder is None and isinstance(space, spaces.Box) and len(space.shape) >= 2:
        shape = "×".join(map(str, space.shape))
        warnings.warn(
            f"the observations look like images ({shape} {space.dtype}) and are flattened into an MLP of "
            f"{int(np.prod(space.shape)):,} inputs; set policy=auto (a CNN for uint8 images: the Nature CNN from "
            "36×36 pixels, a small CNN from 4×4) or policy=cnn, or pass a features_extractor",
            RunWarning,
            stacklevel=3,
        )


def obs_dim(space: spaces.Space[Any]) -> int:
    """Input width for an observation space: Box is flattened, Discrete one-hot encoded."""
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    raise UnsupportedSpaceError(
        f"observation space {space} is not supported; supported: Box, Discrete "
        "(wrap Dict/Tuple spaces with gymnasium.wrappers.FlattenObservation)"
    )


class ActorCritic(nn.Module):
    """π_θ(a|s) and V_w(s) for one gymnasium observation and action space.

    An ``encoder`` (:mod:`proxrl.policies.encoders`: CNN, Dict, a user module) turns observations into features
    first; without one they are flattened. ``shared_trunk`` puts both heads on one MLP; otherwise actor and critic
    have their own. Box actions use a
    diagonal Gaussian with a state-independent log-std parameter; samples are not clipped here (only when sent
    to the env), so log-probs stay those of the distribution. Observations ``[B, *obs_shape]``.

    ``use_sde`` (gSDE, Raffin et al. 2021; Box actions, no recurrent core): ``log_std`` is ``[L, A]`` over the
    actor trunk's last features φ(s) ``[B, L]``, π(·|s) = N(μ(s), Var(s)) of
    :func:`~proxrl.distributions.gsde_distribution`, and :meth:`act` given exploration matrices θ_ε samples
    μ(s) + φ(s)·θ_ε (:meth:`sample_exploration` draws them; the rollout holds them for several steps).
    """

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: str = "tanh",
        shared_trunk: bool = False,
        log_std_init: float = 0.0,
        ortho_init: bool = True,
        encoder: nn.Module | None = None,
        lstm_hidden_size: int | None = None,
        use_sde: bool = False,
        sde_learn_features: bool = False,
    ) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.encoder = encoder  # shared by actor and critic (as SB3's on-policy default and CleanRL's Atari PPO)
        in_dim = obs_dim(observation_space) if encoder is None else int(cast(Any, encoder).features_dim)  # any module
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
        if use_sde and (not isinstance(action_space, spaces.Box) or self.core is not None):
            what = "a recurrent core" if self.core is not None else f"the action space {action_space}"
            raise UnsupportedSpaceError(f"use_sde=true (gSDE) needs Box actions and no recurrent core, not {what}")
        self.use_sde, self.sde_learn_features = use_sde, sde_learn_features
        # gSDE: one σ per (feature, action) pair, the std of θ_ε's entries (SB3's full_std)
        std_shape = (width, n_params) if use_sde else (n_params,)
        self.log_std = (
            nn.Parameter(torch.full(std_shape, float(log_std_init))) if isinstance(action_space, spaces.Box) else None
        )

    def _features(self, obs: Tensor) -> Tensor:
        if self.encoder is not None:
            features: Tensor = self.encoder(obs)
            return features
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
        return run_layers(self.actor_head, run_layers(self.actor_trunk, self._stateless(obs)))

    def distribution(self, obs: Tensor) -> Distribution:
        """π(·|s) without computing the value."""
        return self._policy(run_layers(self.actor_trunk, self._stateless(obs)))

    def action_log_std(self, obs: Tensor) -> Tensor | None:
        """log σ(s) ``[B, A]`` of a Gaussian policy's π(·|s) (state-independent unless gSDE); None for discrete
        actions."""
        dist = self.distribution(obs)
        return dist.log_std.expand_as(dist.mean) if isinstance(dist, DiagGaussian) else None

    def _policy(self, h: Tensor) -> Distribution:
        """π(·|s) from the actor trunk's output φ(s) = ``h`` ``[B, L]``."""
        params = run_layers(self.actor_head, h)
        if self.use_sde:
            assert self.log_std is not None, "gSDE has a log-std matrix"
            return gsde_distribution(params, h, self.log_std, self.sde_learn_features)
        return make_distribution(self.action_space, params, self.log_std)

    def sample_exploration(self, n: int) -> Tensor:
        """gSDE: ``n`` fresh exploration matrices θ_ε ``[n, L, A]``, one per env (torch's global generator)."""
        assert self.use_sde and self.log_std is not None, "exploration matrices are gSDE's"
        return sample_exploration(self.log_std, n)

    def value(self, obs: Tensor) -> Tensor:
        """V(s) ``[B]``."""
        x = self._stateless(obs)
        h = run_layers(self.actor_trunk if self.critic_trunk is None else self.critic_trunk, x)
        return run_layers(self.critic_head, h).squeeze(-1)

    def act(self, obs: Tensor, exploration: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Sample a ~ π(·|s); returns (actions, log π(a|s) ``[B]``, V(s) ``[B]``). gSDE with ``exploration``
        (θ_ε ``[B, L, A]``, row b for env b): a = μ(s) + φ(s)·θ_ε, scored under the marginal π(·|s)."""
        y = self._stateless(obs)
        h = run_layers(self.actor_trunk, y)
        dist = self._policy(h)
        value = self._critic(y, h)
        if exploration is None:
            actions = dist.sample()
        else:
            assert isinstance(dist, DiagGaussian) and self.use_sde, "exploration matrices are gSDE's"
            actions = dist.mean + gsde_noise(h, exploration)
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
        h = run_layers(self.actor_trunk, y)
        return self._policy(h), self._critic(y, h)

    def _critic(self, y: Tensor, h: Tensor) -> Tensor:
        """V(s) ``[B]`` from the trunks' input ``y`` and the actor trunk's output ``h`` (a shared trunk's)."""
        return run_layers(
            self.critic_head, h if self.critic_trunk is None else run_layers(self.critic_trunk, y)
        ).squeeze(-1)

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
