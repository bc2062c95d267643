"""The settings every trainer that steps environments shares: :class:`RolloutConfig` (envs, the Adam step, the
networks' shape, Ray runners) and :class:`ActorCriticConfig` (a single-agent actor-critic's: vectorisation,
normalisation, the encoder, the recurrent core). Their trainers' base class is ``algos.agent.EnvTrainer``; they
live below it so that the runners, which build policies and envs from them, need not import the algorithms."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from .config import RunConfig, param
from .errors import ConfigError
from .policies import ACTIVATIONS
from .policies.encoders import POLICIES, cnn_precision_param, image_channels_param

INSTALL_HINT = "runners=ray needs Ray: pip install 'proxrl[ray]'"


@dataclass(frozen=True, kw_only=True)
class RolloutConfig(RunConfig):
    """Settings of every trainer that steps environments, single- or multi-agent: N copies, rollout length, Adam,
    discounting, the MLP networks and the stop rule (each trainer's config adds its own, or changes a default)."""

    num_envs: int = param(8, "N, environments stepped in parallel", low=1)
    stop_return: float | None = param(
        None, "stop early once the mean return of the last 20 training episodes reaches this (None: never)"
    )
    num_steps: int = param(128, "T, steps per env per rollout; the batch is num_envs × num_steps", low=1)
    lr: float = param(3e-4, "α, Adam learning rate", low=0.0, low_open=True)
    anneal_lr: bool = param(True, "anneal α linearly to 0 over the run")
    adam_eps: float = param(1e-5, "Adam's ε", low=0.0, low_open=True)
    gamma: float = param(0.99, "γ, discount factor", low=0.0, high=1.0, low_open=True)
    gae_lambda: float = param(0.95, "λ, GAE bias-variance trade-off", low=0.0, high=1.0)
    ent_coef: float = param(0.0, "c, entropy bonus coefficient (J^CLIP+ and the PG losses)", low=0.0)
    vf_coef: float = param(0.5, "value-loss coefficient", low=0.0)
    max_grad_norm: float = param(0.5, "global gradient-norm clip (0: off)", low=0.0)
    norm_adv: bool = param(True, "normalise advantages per minibatch (zero mean, unit std)")
    hidden_sizes: tuple[int, ...] = param((64, 64), "hidden layer widths of the MLPs")
    activation: str = param("tanh", "hidden activation", choices=tuple(ACTIVATIONS))
    log_std_init: float = param(0.0, "initial log σ of the Gaussian policy (Box actions)")
    ortho_init: bool = param(True, "orthogonal initialisation (gain √2 hidden, 0.01 actor head, 1 critic head)")
    runners: str = param(
        "local",
        "where the envs step: local (this process) or ray (num_runners Ray actors of num_envs / num_runners envs "
        "each; needs the ray extra)",
        choices=("local", "ray"),
    )
    num_runners: int = param(2, "runners=ray: how many runner actors (num_envs must be a multiple)", low=1)
    ray_address: str | None = param(
        None, "runners=ray: the Ray cluster to join ('auto' or host:port); None starts a local one"
    )
    sample_timeout_s: float | None = param(
        None,
        "runners=ray: seconds a runner's rollout may take; a later one is abandoned, its runner restarted and the "
        "iteration trains on the others (None: wait forever)",
        low=0.0,
        low_open=True,
    )
    cpus_per_runner: float = param(
        1.0, "runners=ray: CPUs reserved per runner (one SPREAD placement bundle each)", low=0.0, low_open=True
    )
    max_runner_restarts: int = param(
        3, "runners=ray: restarts of a runner whose process died or timed out (-1: no limit)", low=-1
    )
    runner_mode: str = param(
        "sync",
        "runners=ray: sync (every runner acts with the latest weights; deterministic) or async (the learner updates "
        "on whichever fragments arrive, correcting stale ones; PPO and off-policy PG)",
        choices=("sync", "async"),
    )
    max_staleness: int = param(
        1, "runner_mode=async: fragments acted with weights more than K updates old are dropped (and counted)", low=0
    )

    def validate(self) -> None:
        if self.runners == "ray":
            if self.num_envs % self.num_runners:
                raise ConfigError(
                    f"num_envs={self.num_envs} must be a multiple of num_runners={self.num_runners} "
                    "(each runner steps num_envs / num_runners envs)"
                )
            if importlib.util.find_spec("ray") is None:
                raise ConfigError(INSTALL_HINT)
        elif self.runner_mode == "async":
            raise ConfigError("runner_mode=async needs runners=ray (the local runner steps in this process)")
        if self.runner_mode == "async" and not self.supports_async:
            raise ConfigError(
                f"runner_mode=async is for PPO and off-policy PG (their updates correct for stale data); "
                f"{self.algo} needs runner_mode=sync"
            )

    @property
    def supports_async(self) -> bool:
        """Whether this trainer's update corrects fragments acted with older weights (``runner_mode: async``)."""
        return False

    @property
    def batch_size(self) -> int:
        """num_envs × num_steps samples (rows) per rollout."""
        return self.num_envs * self.num_steps


@dataclass(frozen=True, kw_only=True)
class ActorCriticConfig(RolloutConfig):
    """Settings of every single-agent actor-critic trainer on gymnasium envs: how the vector env is stepped, its
    normalisation wrappers and the actor-critic's trunk."""

    vectorization: str = param(
        "auto",
        "how the N envs are stepped: 'auto' uses the env's native vectorised version where gymnasium has one, "
        "else 'sync'; 'async' runs each env in its own process (for expensive envs); 'envpool' steps them in "
        "EnvPool's C++ threads (Atari, classic control, MuJoCo; the envpool extra)",
        choices=("auto", "sync", "async", "vector_entry_point", "envpool"),
    )
    eval_max_steps: int | None = param(
        None,
        "cap on agent steps per evaluation episode, which then counts as truncated (None: the env's own limit; "
        "Atari's default is 27,000 agent steps = 108,000 frames, the ALE's and EnvPool's standard)",
        low=1,
    )
    norm_obs: bool | None = param(
        None,
        "normalise observations by running statistics (gymnasium's wrapper); None (unset): on for a vector of "
        "floats far from unit scale (no bounds at all, beyond ±10, or a component within ±0.1: "
        "envs.preprocessing.badly_scaled), else off",
    )
    norm_reward: bool | None = param(
        None,
        "scale rewards by the std of a running discounted return (gymnasium's wrapper); None (unset): as norm_obs",
    )
    shared_trunk: bool = param(False, "actor and critic share one MLP trunk")
    policy: str = param(
        "auto",
        "observation encoder: auto (custom with a features_extractor, cnn for uint8 images, one encoder per key "
        "for Dict spaces, else mlp), mlp (flattened into the MLP), cnn (Nature CNN), custom",
        choices=POLICIES,
    )
    image_channels: str = image_channels_param()
    cnn_precision: str = cnn_precision_param()
    features_extractor: str | None = param(
        None,
        "your encoder, 'module:Class': Class(observation_space, **features_extractor_kwargs) maps observations "
        "[B, ...] to features [B, F]; proxrl adds the MLP trunks (hidden_sizes) and heads",
    )
    features_extractor_kwargs: dict[str, Any] = param(help="keyword arguments of features_extractor", factory=dict)
    obs_keys: tuple[str, ...] | None = param(
        None,
        "the keys of a Dict observation the policy sees (None: every key of a Box, Discrete or MultiBinary space; "
        "others, such as a Text key, are dropped and said so)",
    )
    hide_obs: tuple[int, ...] | None = param(
        None,
        "indices of a flat Box observation to zero (hidden from the policy, e.g. [1, 3]: CartPole's velocities, "
        "as CartPoleNoVel-v1); None: every component seen",
    )
    recurrent: str = param(
        "none",
        "a recurrent core after the encoder (PPO): lstm carries its state across steps, reset where an episode starts",
        choices=("none", "lstm"),
    )
    lstm_hidden_size: int = param(128, "units of the LSTM core (recurrent: lstm)", low=1)
    use_sde: bool = param(
        False,
        "gSDE (Box actions): explore with ε(s) = φ(s)·θ_ε, θ_ε ~ N(0, σ²) per env, σ a [features × actions] "
        "matrix from log_std_init (−2 is typical); π(·|s) = N(μ(s), Σ_i φ_i² σ_ij²)",
    )
    sde_sample_freq: int = param(
        -1, "use_sde: resample each env's θ_ε every this many steps (-1: once per rollout, at its start)", low=-1
    )
    sde_learn_features: bool = param(
        False, "use_sde: let the variance's gradient train the trunk features φ(s) too (default: φ detached there)"
    )

    def validate(self) -> None:
        super().validate()
        if self.recurrent != "none" and self.algo != "ppo":
            raise ConfigError(
                f"recurrent={self.recurrent} is for PPO (proxrl train ppo); {self.algo} has no recurrent update"
            )
        if self.vectorization == "envpool" and self.runners != "local":
            raise ConfigError("vectorization=envpool is for runners=local: EnvPool already steps its envs in threads")
        if self.use_sde and self.recurrent != "none":
            raise ConfigError("use_sde=true (gSDE) is for feed-forward policies: set recurrent=none or use_sde=false")
        if self.sde_sample_freq == 0:
            raise ConfigError("sde_sample_freq=0 is not a period: use -1 (once per rollout) or a number of steps ≥ 1")
        if self.recurrent != "none" and self.runners != "local":
            raise ConfigError(
                "recurrent policies step their envs locally (runners=local): Ray runners do not carry the state"
            )
