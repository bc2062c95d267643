"""Off-policy policy gradient from a replay memory (the seed's "Off-Policy PG").

∇J ≈ E_β[π(a|s)/β(a|s) · Q^π(s,a) · ∇ln π(a|s)]: rollouts collected by older policies β are kept with their
log β(a|s) and reused; the importance weight is truncated at c̄ (``max_weight``) for variance, and Q^π(s,a) comes
from the learned critic through V-trace (Q̂ = r + γ v_{t+1}, ``advantages.vtrace``), which also gives the critic
its off-policy regression target. With ``baseline`` (Theorem 2) V(s) is subtracted from Q̂.
Each iteration collects one rollout with the current policy, stores it, and takes one Adam step on it and on
``replay_ratio`` rollouts drawn uniformly from the memory of the last ``replay_size``.
"""

from __future__ import annotations

from ..checkpoint import Migration
from ..config import RunConfig
from ..policies import ActorCritic

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..advantages import normalize, vtrace
from ..config import param
from ..objectives import entropy_bonus, importance_weight, pg_loss, value_loss
from ..replay import ReplayMemory, StoredRollout
from ..run import Session
from . import agent
from .agent import EnvTrainer, ActorCriticConfig
from .common import check_finite, explained_variance


@dataclass(frozen=True, kw_only=True)
class OffPolicyPGConfig(ActorCriticConfig):
    """Off-policy PG hyperparameters."""

    algo = "offpolicy_pg"

    num_steps: int = param(32, "T, steps per env per rollout (one replay entry)", low=1)
    lr: float = param(1e-3, "α, Adam learning rate", low=0.0, low_open=True)
    replay_size: int = param(16, "rollouts kept in the replay memory (the oldest is dropped)", low=1)
    replay_ratio: int = param(4, "Adam steps on replayed rollouts per fresh rollout (0: on-policy only)", low=0)
    max_weight: float = param(
        1.0, "c̄, truncation of the importance weight π/β (and V-trace's ρ̄, c̄); inf: none", low=0.0, low_open=True
    )
    baseline: bool = param(True, "subtract V(s) from Q̂ (Theorem 2: same mean, lower variance)")

    @property
    def supports_async(self) -> bool:
        """Every rollout is weighted by π/β against the policy that acted (fresh, replayed or stale alike)."""
        return True


class OffPolicyPG(EnvTrainer):
    """Off-policy PG with truncated importance weights and a V-trace critic, reusing a replay memory."""

    algo = "offpolicy_pg"
    final_checkpoint = "model.pt"
    sample_unit, bench_steps = "env steps", 20_000
    migrations: ClassVar[Mapping[int, Migration]] = {3: agent.nest_optimizer_state}
    config_class: ClassVar[type[RunConfig]] = OffPolicyPGConfig
    config: OffPolicyPGConfig
    policy: ActorCritic

    def __init__(
        self,
        env: str | None = None,
        config: OffPolicyPGConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> None:
        cfg = agent.build_config(OffPolicyPGConfig, config, env, overrides)
        self._setup(cfg, run_dir, progress)
        # not saved in checkpoints: a resumed run refills its memory from fresh rollouts
        self.replay = ReplayMemory(cfg.replay_size, seed=cfg.seed)

    def learn(
        self,
        total_steps: int | None = None,
        callback: Callable[[OffPolicyPG, dict[str, Any]], bool | None] | None = None,
    ) -> OffPolicyPG:
        """Train for ``total_steps`` more env steps (default: until ``config.total_steps`` in all).

        ``callback(agent, row)`` runs after every iteration with the row just logged; returning False stops.
        """
        cfg = self.config
        rollout = self.rollout()
        with Session(self, total_steps, cfg.stop_return) as session:
            for stats in session.iterations(callback):
                # 1. anneal the learning rate linearly with the steps still to go
                lr = self.anneal_lr(session.target)
                # 2. collect T steps from N envs with the current policy (β of this entry) and store them
                with session.timed("collect"):
                    self.policy.eval()
                    batch = rollout.collect()
                    last_obs = torch.as_tensor(rollout.obs, device=self.device)
                self.progress.advance(rollout.steps_taken, *rollout.episodes.drain())
                stats.update(rollout.report())
                with session.timed("update"):
                    fresh = StoredRollout.copy_of(batch, last_obs)
                    self.replay.add(fresh)
                    # 3–4. V-trace targets and one weighted PG step on the fresh rollout, then on replayed ones
                    self.policy.train()
                    rows = [self._update(fresh)]
                    rows += [self._update(self.replay.sample()) for _ in range(cfg.replay_ratio)]
                stats.update(
                    {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}, lr=lr, replay_rollouts=len(self.replay)
                )
                # 5. log and checkpoint: the session, when this iteration's body ends
        return self

    def _update(self, item: StoredRollout) -> dict[str, float]:
        """One Adam step on −E_β[min(π/β, c̄) (Q̂ − b(s)) ln π(a|s)] + c_v (V(s) − v)² − c_H H over a stored rollout."""
        cfg = self.config
        t, n = item.rewards.shape
        all_obs = torch.cat([item.obs, item.last_obs.unsqueeze(0)])  # s_0 … s_T
        dist, all_values = self.policy(all_obs[:-1].reshape(t * n, *item.obs.shape[2:]))
        logp = dist.log_prob(item.actions.reshape(t * n, *item.actions.shape[2:])).reshape(t, n)
        with torch.no_grad():
            values_next = self.policy.value(item.last_obs)
        values = all_values.reshape(t, n)
        with torch.no_grad():  # targets from the current critic, treated as constants
            v_detached = values.detach()
            next_values = torch.cat([v_detached[1:], values_next.unsqueeze(0)])
            v_target, q_hat = vtrace(
                item.rewards,
                v_detached,
                next_values,
                item.terminated,
                item.truncated,
                logp.detach() - item.logp,
                gamma=cfg.gamma,
                rho_bar=cfg.max_weight,
                c_bar=cfg.max_weight,
            )
            adv = q_hat - v_detached if cfg.baseline else q_hat
        valid = item.valid
        weight = importance_weight(logp[valid], item.logp[valid], cfg.max_weight)
        mb_adv = normalize(adv[valid]) if cfg.norm_adv and int(valid.sum()) > 1 else adv[valid]
        p_loss, p_stats = pg_loss(logp[valid], mb_adv, weight)
        v_loss, _ = value_loss(values[valid], v_target[valid])
        ent_loss, ent_stats = entropy_bonus(dist.entropy().reshape(t, n)[valid])
        loss = p_loss + cfg.vf_coef * v_loss + cfg.ent_coef * ent_loss
        check_finite(self.global_step, policy_loss=p_loss, value_loss=v_loss, entropy=ent_loss)
        self.gradient_step(loss)
        return {
            "policy_loss": p_loss.item(),
            "value_loss": v_loss.item(),
            "entropy": ent_stats["entropy"].item(),
            "mean_weight": p_stats["mean_weight"].item(),
            "explained_variance": explained_variance(v_detached[valid], v_target[valid]),
        }
