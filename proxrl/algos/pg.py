"""Vanilla policy gradient: REINFORCE (Theorem 1) and PG with a baseline (Theorem 2), one gradient step per rollout.

θ ← θ + α ∇J(θ) with ∇J estimated as E[Â ∇ln π(a|s)] (``objectives.pg_loss``), where the advantage Â is
chosen by ``advantage`` (the seed's "G, A or δ"):

- ``return``: G, the Monte-Carlo return of complete episodes (REINFORCE; no baseline),
- ``return_minus_value``: G − V(s), the critic as a state-dependent baseline,
- ``gae``: GAE(γ, λ) from the critic,
- ``td``: δ = r + γV(s') − V(s), the one-step TD residual.

The critic is always regressed on the matching target (G for the Monte-Carlo estimators, Â + V for GAE,
r + γV(s') for TD) so ``explained_variance`` is logged; ``return`` does not use it.
"""

from __future__ import annotations

from ..checkpoint import Migration
from ..config import RunConfig
from ..policies import ActorCritic

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor

from ..advantages import discounted_returns, gae, normalize, td_residual
from ..config import param
from ..objectives import entropy_bonus, pg_loss, value_loss
from ..rollout import Batch
from ..run import Session
from . import agent
from .agent import EnvTrainer, ActorCriticConfig
from .common import check_finite, explained_variance

ADVANTAGES = ("return", "return_minus_value", "gae", "td")
EPISODIC = ("return", "return_minus_value")  # Monte-Carlo estimators collect complete episodes


@dataclass(frozen=True, kw_only=True)
class PGConfig(ActorCriticConfig):
    """Policy-gradient hyperparameters (one Adam step per rollout)."""

    algo = "pg"

    advantage: str = param(
        "gae", "Â: return (G, REINFORCE), return_minus_value (G − V(s)), gae (GAE(γ, λ)), td (δ)", choices=ADVANTAGES
    )
    num_steps: int = param(
        128,
        "T, steps per env per rollout; for return / return_minus_value the most steps "
        "an episode may take (each rollout resets the envs and plays one episode per env)",
        low=1,
    )
    lr: float = param(7e-4, "α, Adam learning rate", low=0.0, low_open=True)


def _return(batch: Batch, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    g = discounted_returns(batch.rewards, batch.terminated, batch.truncated, gamma=gamma)
    return g, g


def _return_minus_value(batch: Batch, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    g = discounted_returns(batch.rewards, batch.terminated, batch.truncated, gamma=gamma, next_values=batch.next_values)
    return g - batch.values[:-1], g


def _gae(batch: Batch, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    adv = gae(
        batch.rewards,
        batch.values[:-1],
        batch.next_values,
        batch.terminated,
        batch.truncated,
        gamma=gamma,
        gae_lambda=lam,
    )
    return adv, adv + batch.values[:-1]


def _td(batch: Batch, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    delta = td_residual(batch.rewards, batch.values[:-1], batch.next_values, batch.terminated, gamma=gamma)
    return delta, delta + batch.values[:-1]


# advantage → f(batch, γ, λ) -> (Â [T, N], critic target [T, N])
ESTIMATORS: dict[str, Callable[[Batch, float, float], tuple[Tensor, Tensor]]] = {
    "return": _return,
    "return_minus_value": _return_minus_value,
    "gae": _gae,
    "td": _td,
}


def estimate_advantages(advantage: str, batch: Batch, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """(Â, critic target), each ``[T, N]``, for one of :data:`ADVANTAGES` on a rollout."""
    return ESTIMATORS[advantage](batch, gamma, lam)


class PG(EnvTrainer):
    """Policy gradient with the advantage estimator of ``config.advantage``; ``PG(env, advantage="return")`` is
    REINFORCE (also :func:`REINFORCE` and ``proxrl train reinforce``)."""

    algo = "pg"
    final_checkpoint = "model.pt"
    sample_unit, bench_steps = "env steps", 20_000
    migrations: ClassVar[Mapping[int, Migration]] = {3: agent.nest_optimizer_state}
    config_class: ClassVar[type[RunConfig]] = PGConfig
    config: PGConfig
    policy: ActorCritic

    def __init__(
        self,
        env: str | None = None,
        config: PGConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> None:
        cfg = agent.build_config(PGConfig, config, env, overrides)
        self._setup(cfg, run_dir, progress)
        self.estimator = ESTIMATORS[cfg.advantage]
        self.episodic = cfg.advantage in EPISODIC

    def learn(
        self, total_steps: int | None = None, callback: Callable[[PG, dict[str, Any]], bool | None] | None = None
    ) -> PG:
        """Train for ``total_steps`` more env steps (default: until ``config.total_steps`` in all).

        ``callback(agent, row)`` runs after every update with the row just logged; returning False stops.
        """
        cfg = self.config
        rollout = self.rollout()
        with Session(self, total_steps, cfg.stop_return) as session:
            for stats in session.iterations(callback):
                # 1. anneal the learning rate linearly with the steps still to go
                lr = self.anneal_lr(session.target)
                # 2. collect with π_θ: one complete episode per env (Monte-Carlo estimators), else T steps per env
                with session.timed("collect"):
                    self.policy.eval()
                    batch = rollout.collect(episodic=self.episodic)
                self.progress.advance(rollout.steps_taken, *rollout.episodes.drain())
                stats.update(rollout.report())
                with session.timed("update"):
                    # 3. the advantage estimate Â and the critic's regression target
                    adv, value_target = self.estimator(batch, cfg.gamma, cfg.gae_lambda)
                    # 4. one gradient step on −E[Â ln π(a|s)] + c_v (V − target)² − c_H H
                    self.policy.train()
                    stats.update(self._update(batch, adv, value_target), lr=lr)
                # 5. log and checkpoint: the session, when this iteration's body ends
        return self

    def _update(self, batch: Batch, adv: Tensor, value_target: Tensor) -> dict[str, float]:
        """One Adam step over every valid sample of the rollout."""
        cfg = self.config
        valid = batch.valid
        obs, actions = batch.obs[valid], batch.actions[valid]
        mb_adv, target = adv[valid], value_target[valid]
        if cfg.norm_adv and mb_adv.numel() > 1:
            mb_adv = normalize(mb_adv)
        dist, values = self.policy(obs)
        p_loss, _ = pg_loss(dist.log_prob(actions), mb_adv)
        v_loss, _ = value_loss(values, target)
        ent_loss, ent_stats = entropy_bonus(dist.entropy())
        loss = p_loss + cfg.vf_coef * v_loss + cfg.ent_coef * ent_loss
        check_finite(self.global_step, policy_loss=p_loss, value_loss=v_loss, entropy=ent_loss)
        self.gradient_step(loss)
        return {
            "policy_loss": p_loss.item(),
            "value_loss": v_loss.item(),
            "entropy": ent_stats["entropy"].item(),
            "valid_samples": int(obs.shape[0]),  # the rows inside an episode (samples: every step taken)
            "explained_variance": explained_variance(batch.values[:-1][valid], target),
        }


def REINFORCE(env: str | None = None, config: PGConfig | None = None, **kwargs: Any) -> PG:  # noqa: N802
    """REINFORCE (Williams 1992): :class:`PG` with the Monte-Carlo return as the advantage."""
    if kwargs.get("advantage", "return") != "return" or (config is not None and config.advantage != "return"):
        from ..config import ConfigError

        raise ConfigError("REINFORCE uses the Monte-Carlo return (advantage=return); for another advantage use PG")
    return PG(env, config, **{**kwargs, "advantage": "return"})
