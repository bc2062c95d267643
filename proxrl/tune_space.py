"""The search spaces of ``proxrl tune``: one function per algorithm that draws a trial's hyperparameters.

The ranges are rl-baselines3-zoo's (``rl_zoo3/hyperparams_opt.py``: ``sample_ppo_params``, ``sample_a2c_params``)
mapped to proxrl's keys; docs/tune.md lists them. Every draw is valid by construction: the rollout is a power of
two no longer than one evaluation period, and ``num_minibatches`` is a divisor of the batch (of ``num_envs`` for a
recurrent policy), so no trial fails on a config check. A key the user fixed (``--set``) is not searched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .env_config import ActorCriticConfig

if TYPE_CHECKING:
    import optuna

# rl-zoo's net_arch names → hidden_sizes (its pi = vf = [...] separate networks, proxrl's default trunk)
NET_ARCH: dict[str, tuple[int, ...]] = {"tiny": (64,), "small": (64, 64), "medium": (256, 256)}


class Draw:
    """One trial's draw: each method suggests one Optuna parameter (unless the key it sets is fixed) and records
    the config keys it sets in :attr:`values`."""

    def __init__(
        self, trial: optuna.Trial, base: ActorCriticConfig, fixed: frozenset[str], steps_per_evaluation: int
    ) -> None:
        self.trial, self.base, self.fixed = trial, base, fixed
        self.steps_per_evaluation = steps_per_evaluation
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        """The trial's value of ``key``: drawn, else the base config's."""
        return self.values[key] if key in self.values else getattr(self.base, key)

    def log_float(self, key: str, low: float, high: float) -> None:
        """``key`` log-uniform in [low, high]."""
        if key not in self.fixed:
            self.values[key] = self.trial.suggest_float(key, low, high, log=True)

    def uniform(self, key: str, low: float, high: float) -> None:
        """``key`` uniform in [low, high]."""
        if key not in self.fixed:
            self.values[key] = self.trial.suggest_float(key, low, high)

    def one_minus(self, key: str, low: float, high: float) -> None:
        """``key`` = 1 − x, x log-uniform in [low, high] (γ and λ close to 1, as rl-zoo draws them)."""
        if key not in self.fixed:
            self.values[key] = 1.0 - self.trial.suggest_float(f"one_minus_{key}", low, high, log=True)

    def choice(self, key: str, options: Sequence[float | int | str]) -> None:
        """``key`` one of ``options``."""
        if key not in self.fixed:
            self.values[key] = self.trial.suggest_categorical(key, options)

    def net_arch(self, names: Sequence[str]) -> None:
        """``hidden_sizes`` by rl-zoo's network names (:data:`NET_ARCH`)."""
        if "hidden_sizes" not in self.fixed:
            self.values["hidden_sizes"] = list(NET_ARCH[self.trial.suggest_categorical("net_arch", names)])

    def rollout_length(self, low: int, high: int) -> None:
        """``num_steps`` = 2^p, p in [low, high], the top capped so that one rollout (num_envs × num_steps) fits in
        an evaluation period: every evaluation then follows at least one update, at the same steps in every trial."""
        if "num_steps" in self.fixed:
            return
        fits = self.steps_per_evaluation // self.base.num_envs
        top = max(0, min(high, int(math.log2(fits)) if fits >= 1 else 0))
        self.values["num_steps"] = 2 ** self.trial.suggest_int("num_steps_pow", min(low, top), top)

    def minibatches(self, low: int, high: int) -> None:
        """``num_minibatches`` from a minibatch of 2^p samples, p in [low, high] (rl-zoo's batch_size): the largest
        divisor of the batch (of num_envs for a recurrent policy) at most batch / 2^p."""
        if "num_minibatches" in self.fixed:
            return
        size = 2 ** self.trial.suggest_int("minibatch_size_pow", low, high)
        batch = self.base.num_envs * int(self.get("num_steps"))
        whole = self.base.num_envs if self.base.recurrent != "none" else batch  # what a minibatch count must divide
        self.values["num_minibatches"] = largest_divisor(whole, max(1, batch // size))


def largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of ``n`` that is ≤ ``at_most`` (1 at least)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


def ppo_space(d: Draw) -> None:
    """rl-zoo's PPO space (``sample_ppo_params``): batch_size → minibatch_size_pow, n_steps → num_steps_pow,
    clip_range → clip_eps, n_epochs → num_epochs; net_arch and activation_fn as hidden_sizes and activation."""
    d.rollout_length(5, 12)
    d.minibatches(2, 10)
    d.one_minus("gamma", 1e-4, 0.03)
    d.one_minus("gae_lambda", 1e-4, 0.1)
    d.log_float("lr", 1e-5, 2e-3)
    d.log_float("ent_coef", 1e-8, 0.1)
    d.choice("clip_eps", (0.1, 0.2, 0.3, 0.4))
    d.choice("num_epochs", (1, 5, 10, 20))
    d.uniform("max_grad_norm", 0.3, 2.0)
    d.net_arch(("tiny", "small", "medium"))
    d.choice("activation", ("tanh", "relu"))


def pg_space(d: Draw) -> None:
    """rl-zoo's A2C space (``sample_a2c_params``) on proxrl's PG (one Adam step per rollout): n_steps →
    num_steps_pow (its categorical 32…2048 as powers of two); GAE's λ only where the advantage is GAE."""
    advantage = d.get("advantage")
    if advantage in ("gae", "td"):  # with return / return_minus_value, num_steps is the episode cap: not tuned
        d.rollout_length(5, 11)
    if advantage == "gae":
        d.one_minus("gae_lambda", 1e-4, 0.1)
    d.one_minus("gamma", 1e-4, 0.03)
    d.log_float("lr", 1e-5, 2e-3)
    d.uniform("max_grad_norm", 0.3, 2.0)
    d.log_float("ent_coef", 1e-8, 0.1)
    d.net_arch(("small", "medium"))
    d.choice("activation", ("tanh", "relu"))


def offpolicy_pg_space(d: Draw) -> None:
    """Off-policy PG: the A2C space's shared keys, a shorter rollout (one replay entry), and proxrl's own replay
    settings (rl-zoo has no such algorithm: these ranges bracket proxrl's defaults)."""
    d.rollout_length(3, 7)
    d.one_minus("gamma", 1e-4, 0.03)
    d.log_float("lr", 1e-5, 2e-3)
    d.uniform("max_grad_norm", 0.3, 2.0)
    d.log_float("ent_coef", 1e-8, 0.1)
    d.choice("replay_ratio", (0, 1, 2, 4, 8))
    d.choice("replay_size", (4, 16, 64))
    d.choice("max_weight", (1.0, 2.0))
    d.net_arch(("small", "medium"))
    d.choice("activation", ("tanh", "relu"))


# config algo (RunConfig.algo) → its space; reinforce is pg with advantage=return
SPACES: dict[str, Callable[[Draw], None]] = {"ppo": ppo_space, "pg": pg_space, "offpolicy_pg": offpolicy_pg_space}
