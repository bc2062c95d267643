"""Clip-PPO (Schulman et al. 2017): collect → GAE → clipped surrogate for some epochs of minibatches → log.

The loop reads top to bottom in :meth:`PPO.learn`; the estimator and the losses are the pure functions of
``proxrl.advantages`` and ``proxrl.objectives``.
"""

from __future__ import annotations

from ..checkpoint import Migration
from ..config import RunConfig
from ..policies import ActorCritic

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from ..rollout import Batch, Rollout
from ..run import Session
from . import agent
from .agent import EnvTrainer, ActorCriticConfig
from ..advantages import gae, normalize, vtrace
from ..config import ConfigError, param
from ..distributions import make_distribution
from ..kl import AdaptiveKL
from ..fast.fused import FusedClipPPOGradient
from ..objectives import clipped_surrogate, entropy_bonus, importance_weight, kl_penalty, kl_surrogate, value_loss
from ..fast.flat_adam import adam_step
from .common import check_finite, check_gradient, explained_variance


OBJECTIVES = ("clip", "kl", "adaptive_kl", "clip_kl")


@dataclass(frozen=True, kw_only=True)
class PPOConfig(ActorCriticConfig):
    """Clip-PPO hyperparameters; defaults follow the PPO paper and common practice (CleanRL, SB3)."""

    algo = "ppo"

    num_epochs: int = param(4, "K, passes over each rollout", low=1)
    num_minibatches: int = param(4, "minibatches per epoch; must divide num_envs × num_steps", low=1)
    clip_eps: float = param(0.2, "ε, ratio clip range [1 − ε, 1 + ε] of J^CLIP", low=0.0, low_open=True)
    anneal_clip: bool = param(False, "anneal ε linearly to 0 over the run (as rl-zoo's tuned presets)")
    clip_vloss: bool = param(False, "clip the value update to ±ε around the rollout's values")
    target_kl: float | None = param(
        None, "stop an update's epochs once approx-KL exceeds this (None: off)", low=0.0, low_open=True
    )
    objective: str = param(
        "clip",
        "policy surrogate: clip (J^CLIP), kl (J^KL, fixed c), adaptive_kl (J^KL, c adapted "
        "toward kl_target), clip_kl (J^CLIP − c·KL)",
        choices=OBJECTIVES,
    )
    kl_coef: float = param(
        1.0, "c (β), coefficient of the exact D_KL(π_old ‖ π) penalty; the initial c of adaptive_kl", low=0.0
    )
    kl_target: float = param(
        0.01, "d_targ of adaptive_kl: c doubles above 1.5·d_targ and halves below d_targ/1.5", low=0.0, low_open=True
    )
    fused_gradient: bool = param(
        True,
        "compute the clip objective's minibatch gradient by its closed-form backward "
        "(proxrl.fast.fused; same gradient as autograd to float rounding, ~2× faster on small "
        "MLPs); used only where supported (CPU, separate MLP trunks, objective clip)",
    )
    max_weight: float = param(
        1.0,
        "c̄, runner_mode=async: a stale sample's weight π_prox/β and V-trace's ρ̄, c̄ are truncated at c̄",
        low=0.0,
        low_open=True,
    )

    @property
    def supports_async(self) -> bool:
        """Stale fragments are corrected as in IMPALA/APPO: V-trace targets and π_prox/β-weighted advantages."""
        return True

    def validate(self) -> None:
        super().validate()  # the shared rollout settings' checks (runners)
        if self.batch_size % self.num_minibatches:
            raise ConfigError(
                f"num_minibatches={self.num_minibatches} must divide the batch num_envs × num_steps = "
                f"{self.batch_size}; pick a divisor of {self.batch_size}"
            )
        if self.num_minibatches > self.batch_size:
            raise ConfigError(f"num_minibatches={self.num_minibatches} exceeds the batch size {self.batch_size}")
        if self.recurrent != "none":  # minibatches of whole env sequences
            if self.num_envs % self.num_minibatches:
                raise ConfigError(
                    f"recurrent={self.recurrent} takes minibatches of whole env sequences: num_minibatches="
                    f"{self.num_minibatches} must divide num_envs={self.num_envs}"
                )
            if self.objective != "clip":
                raise ConfigError(
                    f"recurrent={self.recurrent} trains the clip objective only, not objective={self.objective}"
                )

    @property
    def minibatch_size(self) -> int:
        """batch_size / num_minibatches."""
        return self.batch_size // self.num_minibatches


def _clip(logp: Any, old_logp: Any, adv: Any, kl: Any, clip_eps: float, kl_coef: float) -> Any:
    return clipped_surrogate(logp, old_logp, adv, clip_eps)


def _kl(logp: Any, old_logp: Any, adv: Any, kl: Any, clip_eps: float, kl_coef: float) -> Any:
    return kl_surrogate(logp, old_logp, adv, kl, kl_coef)


def _clip_kl(logp: Any, old_logp: Any, adv: Any, kl: Any, clip_eps: float, kl_coef: float) -> Any:
    loss, stats = clipped_surrogate(logp, old_logp, adv, clip_eps)
    penalty, kl_stats = kl_penalty(kl, kl_coef)
    return loss + penalty, {**stats, **kl_stats}


# objective → f(logp, old_logp, adv, exact per-sample KL or None, ε, c) -> (loss, stats)
POLICY_LOSSES = {"clip": _clip, "kl": _kl, "adaptive_kl": _kl, "clip_kl": _clip_kl}
STAT_NAMES = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac")


class PPO(EnvTrainer):
    """PPO on a gymnasium environment, with the objective chosen by ``config.objective``.

    ``PPO("CartPole-v1").learn(100_000).save("ppo.pt")``; ``PPO.load("ppo.pt").predict(obs)``.
    With ``run_dir``, the run writes its config, ``progress.csv``, TensorBoard events and checkpoints there.
    """

    algo = "ppo"
    final_checkpoint = "model.pt"
    sample_unit, bench_steps = "env steps", 20_000
    migrations: ClassVar[Mapping[int, Migration]] = {3: agent.nest_optimizer_state}
    config_class: ClassVar[type[RunConfig]] = PPOConfig
    config: PPOConfig
    policy: ActorCritic

    def __init__(
        self,
        env: str | None = None,
        config: PPOConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> None:
        cfg = agent.build_config(PPOConfig, config, env, overrides)
        self._setup(cfg, run_dir, progress)
        # the objective is resolved once: its loss function, whether it needs π_old's exact KL, c's controller
        self.policy_loss = POLICY_LOSSES[cfg.objective]
        self.uses_kl = cfg.objective != "clip"
        self.adaptive_kl = AdaptiveKL(cfg.kl_coef, cfg.kl_target) if cfg.objective == "adaptive_kl" else None
        self.kl_coef = cfg.kl_coef
        use_fused = cfg.fused_gradient and cfg.objective == "clip" and FusedClipPPOGradient.supports(self.policy)
        self.fused = (
            FusedClipPPOGradient(self.policy, self.flats["policy"], cfg.vf_coef, cfg.ent_coef) if use_fused else None
        )
        # the minibatch step, chosen once: the closed-form gradient where it applies, else autograd
        self.minibatch_step = self._fused_step if self.fused is not None else self._autograd_step
        # and the update: minibatches of samples, or of whole env sequences for a recurrent policy
        self.update = self._update_recurrent if self.policy.core is not None else self._update

    def extra_state(self) -> dict[str, Any]:
        """The KL coefficient c (adapted by adaptive_kl)."""
        return {"kl_coef": self.kl_coef}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore c."""
        self.kl_coef = float(state["kl_coef"])
        if self.adaptive_kl is not None:
            self.adaptive_kl.coef = self.kl_coef

    def learn(
        self, total_steps: int | None = None, callback: Callable[[PPO, dict[str, Any]], bool | None] | None = None
    ) -> PPO:
        """Train for ``total_steps`` more env steps (default: until ``config.total_steps`` in all).

        ``callback(agent, row)`` runs after every update with the row just logged; returning False stops.
        """
        cfg = self.config
        rollout = self.rollout()
        with Session(self, total_steps, cfg.stop_return) as session:
            for stats in session.iterations(callback):
                # 1. anneal the learning rate and clip range linearly with the steps still to go
                lr = self.anneal_lr(session.target)
                clip_eps = cfg.clip_eps * (1.0 - self.global_step / session.target) if cfg.anneal_clip else cfg.clip_eps
                # 2. collect T steps from N envs with π_θold
                with session.timed("collect"):
                    self.policy.eval()
                    batch = rollout.collect()
                self.progress.advance(rollout.steps_taken, *rollout.episodes.drain())
                stats.update(rollout.report())
                with session.timed("update"):
                    # 3. advantages by GAE(γ, λ); value targets R̂ = Â + V (async runners: V-trace, weighted Â)
                    if cfg.runner_mode == "async":
                        batch, adv, returns, corrected = self._stale_corrected(batch, rollout.obs)
                        stats.update(corrected)
                    else:
                        adv = gae(
                            batch.rewards,
                            batch.values[:-1],
                            batch.next_values,
                            batch.terminated,
                            batch.truncated,
                            gamma=cfg.gamma,
                            gae_lambda=cfg.gae_lambda,
                        )
                        returns = adv + batch.values[:-1]
                    # 4. K epochs of minibatch updates on the policy objective and the value loss
                    self.policy.train()
                    stats.update(self.update(batch, adv, returns, clip_eps), lr=lr, clip_eps=clip_eps)
                # 5. log and checkpoint: the session, when this iteration's body ends
        return self

    @torch.no_grad()
    def _stale_corrected(self, batch: Batch, carry_obs: Any) -> tuple[Batch, Tensor, Tensor, dict[str, float]]:
        """Async runners' fragments were acted by β, a policy up to ``max_staleness`` updates old. As IMPALA and APPO
        (Espeholt et al. 2018; Hilton et al. 2021's decoupled PPO): the current policy π_prox is the update's π_old
        (the clip is on π_θ/π_prox); the critic's targets are V-trace's v_t with ρ_t = min(c̄, π_prox/β); and the
        advantage is ρ_t (r_t + γ v_{t+1} − V(s_t)), the seed's truncated off-policy weight times Q̂ − V. Returns the
        batch with π_prox's log-probs and values, Â, the targets and the mean weight."""
        cfg = self.config
        t, n = batch.rewards.shape
        dist, values = self.policy(batch.obs.reshape(t * n, *batch.obs.shape[2:]))
        logp_prox = dist.log_prob(batch.actions.reshape(t * n, *batch.actions.shape[2:])).reshape(t, n)
        values = values.reshape(t, n)
        last = self.policy.value(torch.as_tensor(carry_obs, device=self.device))
        # V of the next state by the current critic; after a truncation the behaviour critic's V(final observation)
        # (that observation is not kept in the batch)
        next_values = torch.where(batch.truncated, batch.values[1:], torch.cat([values[1:], last[None]]))
        v_target, q_hat = vtrace(
            batch.rewards,
            values,
            next_values,
            batch.terminated,
            batch.truncated,
            logp_prox - batch.logp,
            gamma=cfg.gamma,
            rho_bar=cfg.max_weight,
            c_bar=cfg.max_weight,
        )
        weight = importance_weight(logp_prox, batch.logp, cfg.max_weight)
        prox = replace(batch, logp=logp_prox, values=torch.cat([values, last[None]]))
        return prox, weight * (q_hat - values), v_target, {"mean_weight": float(weight[batch.valid].mean())}

    def _fused_step(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        old_logp: torch.Tensor,
        adv: torch.Tensor,
        returns: torch.Tensor,
        old_values: torch.Tensor,
        clip_eps: float,
        old_params: torch.Tensor | None,
        old_log_std: torch.Tensor | None,
    ) -> torch.Tensor:
        """One minibatch step with the gradient written by the closed-form backward (``proxrl.fast.fused``: clip
        objective, CPU MLPs); returns its stats row (STAT_NAMES)."""
        cfg = self.config
        assert self.fused is not None
        loss, row = self.fused(obs, actions, old_logp, adv, returns, old_values, clip_eps, cfg.clip_vloss)
        if not math.isfinite(loss.item()):
            check_finite(self.global_step, policy_loss=row[0], value_loss=row[1], entropy=row[2], loss=loss)
        check_gradient(self.global_step, self.flats["policy"].clip_grad_norm_(cfg.max_grad_norm))
        adam_step(self.optimizers["policy"])
        return row

    def _autograd_step(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        old_logp: torch.Tensor,
        adv: torch.Tensor,
        returns: torch.Tensor,
        old_values: torch.Tensor,
        clip_eps: float,
        old_params: torch.Tensor | None,
        old_log_std: torch.Tensor | None,
    ) -> torch.Tensor:
        """One minibatch step through autograd (any objective, any policy); returns its stats row
        (STAT_NAMES, then the exact KL when the objective uses it)."""
        dist, values = self.policy(obs)
        kl_values = None
        if self.uses_kl:
            assert old_params is not None  # the rollout's head outputs are kept when the objective uses the KL
            kl_values = make_distribution(self.policy.action_space, old_params, old_log_std).kl(dist)
        return self._loss_step(
            dist.log_prob(actions), dist.entropy(), values, old_logp, adv, returns, old_values, clip_eps, kl_values
        )

    def _loss_step(
        self,
        logp: torch.Tensor,
        entropy: torch.Tensor,
        values: torch.Tensor,
        old_logp: torch.Tensor,
        adv: torch.Tensor,
        returns: torch.Tensor,
        old_values: torch.Tensor,
        clip_eps: float,
        kl_values: torch.Tensor | None,
    ) -> torch.Tensor:
        """J^CLIP+ (or the KL objectives) − c_v·value loss + c·entropy of one minibatch, its gradient step, and
        its stats row (STAT_NAMES, then the exact KL when the objective uses it)."""
        cfg = self.config
        pg_loss, pg_stats = self.policy_loss(logp, old_logp, adv, kl_values, clip_eps, self.kl_coef)
        v_loss, v_stats = value_loss(values, returns, old_values, clip_eps if cfg.clip_vloss else None)
        ent_loss, ent_stats = entropy_bonus(entropy)
        loss = pg_loss + cfg.vf_coef * v_loss + cfg.ent_coef * ent_loss
        if not math.isfinite(loss.item()):  # one check on the sum; name the culprit only on failure
            check_finite(self.global_step, policy_loss=pg_loss, value_loss=v_loss, entropy=ent_loss, loss=loss)
        self.gradient_step(loss)
        row = [
            pg_loss.detach(),
            v_stats["value_loss"],
            ent_stats["entropy"],
            pg_stats["approx_kl"],
            pg_stats["clip_frac"],
        ]
        return torch.stack(row + [pg_stats["kl"]] if self.uses_kl else row)

    def _epochs(
        self, n: int, size: int, step: Callable[[Any], torch.Tensor], device: torch.device, always_shuffle: bool
    ) -> tuple[list[torch.Tensor], int]:
        """K epochs over ``n`` items (samples, or env columns) in minibatches of ``size``, reshuffled every epoch;
        one minibatch holding every item is taken whole and in order (``slice(None)``: its mean loss does not depend
        on the order) unless ``always_shuffle``. ``step(idx)`` makes one minibatch's gradient step and returns its
        stats row; the epochs stop early once a row's approx-KL exceeds ``target_kl``. Returns the rows and the
        epochs done."""
        cfg = self.config
        rows: list[torch.Tensor] = []
        for epoch in range(cfg.num_epochs):
            perm = torch.randperm(n, device=device) if always_shuffle or size < n else None
            for start in range(0, n, size):
                rows.append(step(slice(None) if perm is None else perm[start : start + size]))
                if cfg.target_kl is not None and rows[-1][3].item() > cfg.target_kl:
                    return rows, epoch + 1
        return rows, cfg.num_epochs

    def _update_recurrent(
        self, batch: Any, adv: torch.Tensor, returns: torch.Tensor, clip_eps: float
    ) -> dict[str, float]:
        """K epochs over minibatches of whole env columns (as CleanRL's ppo_atari_lstm and SB3-contrib's
        RecurrentPPO): each minibatch replays its envs' T steps through the core from the state the rollout began
        with, reset where an episode starts, so no sequence runs across a reset; the loss is over valid rows."""
        cfg = self.config
        n = batch.rewards.shape[1]
        rollout = self.envs.rollout
        assert isinstance(rollout, Rollout) and rollout.initial_state is not None  # recurrent: local envs only
        h0, c0 = rollout.initial_state

        def step(e: Any) -> torch.Tensor:
            valid = batch.valid[:, e].reshape(-1)
            dist, values, _ = self.policy.sequence(batch.obs[:, e], (h0[e], c0[e]), batch.starts[:, e])
            actions = batch.actions[:, e].reshape(-1, *batch.actions.shape[2:])
            seq_adv = adv[:, e].reshape(-1)[valid]
            if cfg.norm_adv and seq_adv.numel() > 1:
                seq_adv = normalize(seq_adv)
            return self._loss_step(
                dist.log_prob(actions)[valid],
                dist.entropy()[valid],
                values[valid],
                batch.logp[:, e].reshape(-1)[valid],
                seq_adv,
                returns[:, e].reshape(-1)[valid],
                batch.values[:-1][:, e].reshape(-1)[valid],
                clip_eps,
                None,
            )

        stat_rows, epochs_done = self._epochs(n, n // cfg.num_minibatches, step, batch.obs.device, always_shuffle=True)
        out = dict(zip(STAT_NAMES, torch.stack(stat_rows).mean(0).tolist(), strict=True))
        valid = batch.valid.reshape(-1)
        out["explained_variance"] = explained_variance(batch.values[:-1].reshape(-1)[valid], returns.reshape(-1)[valid])
        out["epochs"] = epochs_done
        return out

    def _update(self, batch: Any, adv: torch.Tensor, returns: torch.Tensor, clip_eps: float) -> dict[str, float]:
        """K epochs over shuffled minibatches of the rollout's valid samples; returns the mean loss stats."""
        cfg = self.config
        valid = batch.valid.reshape(-1)
        # the valid samples, gathered once per update; minibatches index into these
        obs = batch.obs.reshape(-1, *batch.obs.shape[2:])[valid]
        actions = batch.actions.reshape(-1, *batch.actions.shape[2:])[valid]
        old_logp, old_values = batch.logp.reshape(-1)[valid], batch.values[:-1].reshape(-1)[valid]
        flat_adv, flat_returns = adv.reshape(-1)[valid], returns.reshape(-1)[valid]
        n = obs.shape[0]
        mb_size = max(1, math.ceil(n / cfg.num_minibatches))
        old_params = old_log_std = None
        if self.uses_kl:  # π_old(·|s) for the exact KL: the policy has not changed since it collected the batch
            with torch.no_grad():  # log σ per sample [n, A] (gSDE's depends on s)
                old_params, old_log_std = self.policy.action_params(obs), self.policy.action_log_std(obs)
        whole_adv = normalize(flat_adv) if cfg.norm_adv and n > 1 else flat_adv

        def step(idx: Any) -> torch.Tensor:
            if isinstance(idx, slice):  # the one minibatch holding every sample: Â normalised over the whole batch
                mb_adv = whole_adv
            else:
                mb_adv = flat_adv[idx]
                if cfg.norm_adv and mb_adv.numel() > 1:
                    mb_adv = normalize(mb_adv)
            return self.minibatch_step(
                obs[idx],
                actions[idx],
                old_logp[idx],
                mb_adv,
                flat_returns[idx],
                old_values[idx],
                clip_eps,
                None if old_params is None else old_params[idx],
                None if old_log_std is None else old_log_std[idx],
            )

        stat_rows, epochs_done = self._epochs(n, mb_size, step, obs.device, always_shuffle=False)
        means = torch.stack(stat_rows).mean(0).tolist()
        out = dict(zip(STAT_NAMES + ("kl",) if self.uses_kl else STAT_NAMES, means, strict=True))
        if self.uses_kl:
            out["kl_coef"] = self.kl_coef
        if self.adaptive_kl is not None:  # adapt c once per iteration, on the exact KL the whole update reached
            assert old_params is not None  # kept for the adaptive coefficient's exact KL
            with torch.no_grad():
                old = make_distribution(self.policy.action_space, old_params, old_log_std)
                reached = old.kl(self.policy.distribution(obs)).mean().item()
            self.kl_coef = self.adaptive_kl.update(reached)
            out["kl_after_update"] = reached
        out["explained_variance"] = explained_variance(old_values, flat_returns)
        out["epochs"] = epochs_done
        return out
