"""Multi-agent PPO over PettingZoo environments: IPPO, MAPPO and HAPPO (the seed's "Multi-Agent PPO").

All three minimise the same clipped surrogate (``objectives.clipped_surrogate``) per agent on its own actions:

- ``ippo``: every agent its own actor and critic V_i(o_i) on local observations, GAE per agent (``share_actor``
  with ``agent_id`` shares one network across agents);
- ``mappo``: actors on local observations (shared by default), one centralised critic V(s) of the global state,
  joint GAE on the team reward Σ_i r_i; ``value_norm`` normalises its targets;
- ``happo`` (Kuba et al. 2022): per-agent actors updated one after another in a fresh random order each iteration;
  agent i_m's advantage is multiplied by M = Π_{j before i_m} π_j^new(a_j|o_j) / π_j^old(a_j|o_j), computed after
  those agents' updates; centralised critic.
"""

from __future__ import annotations

from ..checkpoint import Migration
from ..config import RunConfig
from ..policies import MultiAgentActorCritic

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from .. import checkpoint
from ..advantages import gae, normalize
from ..config import ConfigError, param
from ..envs import snapshot
from ..marl.value_norm import ValueNormalizer
from ..marl.batch import MultiAgentBatch
from ..marl.collector import MultiAgentCollector
from ..marl.envs import FramePreprocessing, agent_spec, load_pettingzoo
from ..marl import evaluation
from ..marl.networks import build_networks
from ..marl.zero_sum import ZeroSumCheck
from ..policies.encoders import cnn_precision_param, image_channels_param
from ..runners.group import RunnerGroup
from ..runners.marl_runner import MultiAgentRunner
from ..objectives import clipped_surrogate, entropy_bonus, value_loss
from ..run import Session
from . import agent
from .agent import EnvTrainer, RolloutConfig
from ..devices import resolve_device
from .common import StatLog, minibatches

METHODS = ("ippo", "mappo", "happo")


@dataclass(frozen=True, kw_only=True)
class MultiAgentPPOConfig(RolloutConfig):
    """Multi-agent PPO hyperparameters (``method`` picks IPPO, MAPPO or HAPPO); the shared rollout, Adam,
    discounting and network settings are :class:`RolloutConfig`'s, some with MAPPO's defaults."""

    algo = "multiagent_ppo"

    env: str = param("mpe2.simple_spread_v3", "PettingZoo module path; its parallel_env(...) or env(...) is used")
    method: str = param(
        "mappo", "ippo (local critics), mappo (central critic), happo (sequential updates)", choices=METHODS
    )
    share_actor: bool | None = param(
        None, "one actor for all agents (None: mappo yes where every agent has the same spaces; ippo and happo no)"
    )
    agent_id: bool = param(False, "append a one-hot agent id to the inputs of shared networks")
    global_state: str = param(
        "auto",
        "the central critic's input: env.state() (env), all observations "
        "concatenated (concat), or env.state() where the env has one (auto)",
        choices=("auto", "env", "concat"),
    )
    policy: str = param(
        "auto",
        "observation encoder: auto (the Nature CNN for uint8 images of at least 36×36, else mlp), mlp, cnn; "
        "with images a central critic's CNN sees every agent's frame stacked along the channels",
        choices=("auto", "mlp", "cnn"),
    )
    image_channels: str = image_channels_param()
    cnn_precision: str = cnn_precision_param()
    grayscale: bool = param(False, "turn image observations to grayscale (SuperSuit; the butterfly extra)")
    frame_size: int = param(0, "resize image observations to this many pixels square (SuperSuit; 0: as given)", low=0)
    frame_stack: int = param(1, "stack the last k image observations along the channels (SuperSuit)", low=1)
    num_steps: int = param(128, "T, rows per env copy per rollout (joint steps, or turns in AEC games)", low=1)
    num_epochs: int = param(5, "K, passes over each rollout (per agent for happo)", low=1)
    num_minibatches: int = param(1, "minibatches per epoch over the rollout's rows", low=1)
    lr: float = param(5e-4, "α, Adam learning rate (actors and critic)", low=0.0, low_open=True)
    anneal_lr: bool = param(False, "anneal α linearly to 0 over the run")
    clip_eps: float = param(0.2, "ε, ratio clip range of J^CLIP", low=0.0, low_open=True)
    ent_coef: float = param(0.01, "c, entropy bonus coefficient", low=0.0)
    max_grad_norm: float = param(10.0, "gradient-norm clip per network (0: off)", low=0.0)
    value_norm: bool = param(False, "train the critic on returns normalised by their running mean and std")

    def validate(self) -> None:
        super().validate()  # the shared rollout settings' checks (runners)
        if self.method == "happo" and self.share_actor:
            raise ConfigError(
                "happo updates each agent's actor in turn, so actors cannot be shared: "
                "set share_actor=false (or leave it unset)"
            )


def _flat(x: Tensor) -> Tensor:
    """[T, N, ...] → [T·N, ...]."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


class MultiAgentPPO(EnvTrainer):
    """IPPO / MAPPO / HAPPO on a PettingZoo environment named by its module path.

    ``MultiAgentPPO("mpe2.simple_spread_v3", method="mappo", env_kwargs={"N": 3}).learn(200_000)``.
    """

    algo = "multiagent_ppo"
    final_checkpoint = "model.pt"
    sample_unit, bench_steps = "env steps", 20_000
    migrations: ClassVar[Mapping[int, Migration]] = {2: checkpoint.drop_config_keys("vectorization")}
    config_class: ClassVar[type[RunConfig]] = MultiAgentPPOConfig
    config: MultiAgentPPOConfig
    policy: MultiAgentActorCritic

    def __init__(
        self,
        env: str | None = None,
        config: MultiAgentPPOConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> None:
        cfg = agent.build_config(MultiAgentPPOConfig, config, env, overrides)
        self._begin(cfg, run_dir, progress)
        self.kind, self.make_env = load_pettingzoo(cfg.env, cfg.env_kwargs, FramePreprocessing.of(cfg))
        probe = self.make_env()
        self.spec = agent_spec(probe, self.kind, cfg.global_state, cfg.policy, cfg.image_channels)
        probe.close()
        self.policy, self.share_actor, groups = build_networks(self.spec, cfg)
        convolutional = self.spec.image_shape is not None
        self.device = resolve_device(cfg.device, sum(p.numel() for p in self.policy.parameters()), convolutional)
        self.policy.to(self.device)
        self.flat_adams(groups)  # one Adam per network (after the move to the device)
        self.acting_rng = None  # torch samples the actions (no numpy acting path for multi-agent policies)
        # the variants, resolved once: whose GAE the critic learns, and whether actors update together or in turn
        views = MultiAgentBatch.local_critic_data, MultiAgentBatch.central_critic_data
        self.critic_data = views[0] if cfg.method == "ippo" else views[1]
        self.update = self._update_sequential if cfg.method == "happo" else self._update_joint
        self.value_norm = ValueNormalizer(cfg.value_norm)
        self.order_rng = torch.Generator().manual_seed(cfg.seed)  # HAPPO's agent order
        self.zero_sum = ZeroSumCheck(cfg.method)  # a central critic on a zero-sum game: said once

    # the multi-agent evaluation (proxrl/marl/evaluation.py) in place of the single-agent one
    def predict(  # type: ignore[override]
        self,
        obs: np.ndarray,
        state: np.ndarray | None = None,
        masks: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> np.ndarray:
        """Actions ``[B, A]`` for padded observations ``[B, A, D]`` (:func:`proxrl.marl.evaluation.predict`)."""
        return evaluation.predict(self, obs, state, masks, deterministic)

    def evaluate(
        self,
        episodes: int = 10,
        deterministic: bool = True,
        video_dir: str | Path | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Team and per-agent returns over fresh episodes (:func:`proxrl.marl.evaluation.evaluate`)."""
        return evaluation.evaluate(self, episodes, deterministic, video_dir, seed)

    def describe_evaluation(
        self,
        episodes: int = 20,
        deterministic: bool = True,
        video_dir: str | Path | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """``proxrl eval`` of a multi-agent run (:func:`proxrl.marl.evaluation.describe_evaluation`)."""
        return evaluation.describe_evaluation(self, episodes, deterministic, video_dir, seed)

    @property
    def method(self) -> str:
        """The name the run is shown under: ippo, mappo or happo."""
        return self.config.method

    def summary(self, eval_episodes: int = 0) -> list[str]:
        """The final lines of a multi-agent run (:func:`proxrl.marl.evaluation.summary`)."""
        return evaluation.summary(self, eval_episodes)

    def start_envs(self) -> MultiAgentCollector | RunnerGroup:
        """N copies of the environment and their collector (or with ``runners: ray`` the runner actors holding
        them); a loaded agent restores their saved state."""
        cfg = self.config
        if cfg.runners == "ray":
            return self.start_runners(MultiAgentRunner, MultiAgentBatch, numpy_weights=False)
        collector = MultiAgentCollector(
            self.kind,
            self.make_env,
            self.spec,
            self.policy,
            cfg.num_envs,
            cfg.num_steps,
            cfg.seed + self.global_step,
            self.device,
        )
        saved, self.envs.saved_envs = self.envs.saved_envs, None
        if saved is not None and "layout" in saved:  # Ray runners' copies: one collector cannot take them
            saved = {"collector": {"unsaved": [f"they were stepped by Ray runners ({saved['layout']})"]}}
        if saved is not None and "collector" in saved:  # exact resume, or the fresh reset (said once)
            snapshot.restore_or_reset(
                collector, saved["collector"], f"the {cfg.num_envs} {cfg.env} envs", cfg.seed + self.global_step
            )
        return collector

    def env_state(self) -> dict[str, Any] | None:
        """The collector's envs and its place in their episodes (for an exact resume), or None before any env."""
        collector = self.envs.rollout
        if isinstance(collector, RunnerGroup):
            return collector.state()
        return self.envs.saved_envs if collector is None else {"collector": snapshot.snapshot(collector)}

    def extra_state(self) -> dict[str, Any]:
        """Value-normaliser statistics and HAPPO's order generator."""
        return {"value_norm": self.value_norm.state(), "order_rng": self.order_rng.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`."""
        self.value_norm.load_state(state["value_norm"])
        self.order_rng.set_state(state["order_rng"])

    # ---------------------------------------------------------------- training
    def learn(
        self,
        total_steps: int | None = None,
        callback: Callable[[MultiAgentPPO, dict[str, Any]], bool | None] | None = None,
    ) -> MultiAgentPPO:
        """Train for ``total_steps`` more rows × copies (default: until ``config.total_steps`` in all)."""
        cfg = self.config
        collector = self.rollout()
        with Session(self, total_steps, cfg.stop_return) as session:
            for stats in session.iterations(callback):
                # 1. anneal the learning rate
                lr = self.anneal_lr(session.target)
                # 2. collect T rows from N copies with every agent's π_θold
                with session.timed("collect"):
                    self.policy.eval()
                    batch = collector.collect()
                self.zero_sum.observe(collector.episodes.agent_returns)
                self.progress.advance(collector.steps_taken, *collector.episodes.drain())
                stats.update(collector.report())
                with session.timed("update"):
                    # 3. advantages: GAE per agent (local critics) or joint GAE on the team reward (central critic)
                    adv, returns = self._advantages(batch)
                    # 4. epochs of clipped-surrogate updates: all agents at once, or one after another (happo)
                    self.policy.train()
                    stats.update(self.update(batch, adv, returns), lr=lr)
                # 5. log and checkpoint: the session, when this iteration's body ends
        return self

    def _advantages(self, b: MultiAgentBatch) -> tuple[Tensor, Tensor]:
        """(Â ``[T, N, A]``, critic targets ``[T, N, A]`` or ``[T, N]``): GAE of each agent's own critic, or the
        joint GAE of the central critic shared by every agent that acted."""
        cfg, vn = self.config, self.value_norm
        rewards, values, next_values, terminated, truncated, mask = self.critic_data(b)
        values = vn.denormalize(values)
        adv = gae(
            rewards,
            values,
            vn.denormalize(next_values),
            terminated,
            truncated,
            gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda,
            mask=mask,
        )
        actor_adv = adv if adv.dim() == 3 else torch.where(b.alive, adv.unsqueeze(-1), torch.zeros(()))
        return actor_adv, adv + values

    def _critic_loss(self, b: MultiAgentBatch, idx: Tensor, targets: Tensor) -> Tensor:
        """The value loss on the rows ``idx`` (normalised targets with ``value_norm``)."""
        values = self.policy.value(_flat(b.obs)[idx], _flat(b.state)[idx])  # [B, A]: V_i, or V(s) repeated
        mask = _flat(self.critic_data(b)[-1])[idx]
        predicted = values if mask.dim() == 2 else values[:, 0]
        return value_loss(predicted[mask], self.value_norm.normalize(_flat(targets)[idx][mask]))[0]

    def _actor_loss(
        self, b: MultiAgentBatch, idx: Tensor, adv: Tensor, agents: list[int] | None, weight: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Clipped surrogate (− c·entropy) over the alive samples of ``agents`` (default all) in rows ``idx``."""
        cfg = self.config
        cols = list(range(len(self.spec.names))) if agents is None else agents
        masks = None if b.masks is None else _flat(b.masks)[idx]
        dist = self.policy.distribution(_flat(b.obs)[idx], masks, agents)
        actions = _flat(b.actions)[idx][:, cols]
        logp, entropy = dist.log_prob(actions), dist.entropy()
        alive = _flat(b.alive)[idx][:, cols]
        mb_adv = _flat(adv)[idx][:, cols][alive]
        if cfg.norm_adv and mb_adv.numel() > 1:
            mb_adv = normalize(mb_adv)
        if weight is not None:  # HAPPO's M, a constant per sample
            mb_adv = mb_adv * weight[idx][:, None].expand_as(alive)[alive]
        pg, stats = clipped_surrogate(logp[alive], _flat(b.logp)[idx][:, cols][alive], mb_adv, cfg.clip_eps)
        ent, ent_stats = entropy_bonus(entropy[alive])
        return pg + cfg.ent_coef * ent, {**stats, **ent_stats, "policy_loss": pg.detach()}

    def _update_joint(self, b: MultiAgentBatch, adv: Tensor, targets: Tensor) -> dict[str, float]:
        """IPPO / MAPPO: K epochs; each minibatch step updates every actor and the critic together."""
        cfg, log = self.config, StatLog()
        self.value_norm.update(targets[self.critic_data(b)[-1]])
        for _ in range(cfg.num_epochs):
            for idx in minibatches(b.obs.shape[0] * b.obs.shape[1], cfg.num_minibatches, self.device):
                actor_loss, stats = self._actor_loss(b, idx, adv, None)
                v_loss = self._critic_loss(b, idx, targets)
                self.gradient_step(actor_loss + cfg.vf_coef * v_loss, tuple(self.flats))
                log.add(**stats, value_loss=v_loss)
        return log.means()

    def _update_sequential(self, b: MultiAgentBatch, adv: Tensor, targets: Tensor) -> dict[str, float]:
        """HAPPO: the critic's epochs, then each agent's actor in a random order, its advantage weighted by M."""
        cfg, log = self.config, StatLog()
        rows = b.obs.shape[0] * b.obs.shape[1]
        self.value_norm.update(targets[self.critic_data(b)[-1]])
        for _ in range(cfg.num_epochs):
            for idx in minibatches(rows, cfg.num_minibatches, self.device):
                v_loss = self._critic_loss(b, idx, targets)
                self.gradient_step(cfg.vf_coef * v_loss, ("critic",))
                log.add(value_loss=v_loss)
        m = torch.ones(rows, device=self.device)
        order = torch.randperm(len(self.spec.names), generator=self.order_rng).tolist()
        for i in order:
            for _ in range(cfg.num_epochs):
                for idx in minibatches(rows, cfg.num_minibatches, self.device):
                    loss, stats = self._actor_loss(b, idx, adv, [i], weight=m)
                    self.gradient_step(loss, (f"actor_{i}",))
                    log.add(**stats)
            with torch.no_grad():  # M ← M · π_i^new / π_i^old on the rows where agent i acted
                masks = None if b.masks is None else _flat(b.masks)
                new_logp = self.policy.distribution(_flat(b.obs), masks, [i]).log_prob(_flat(b.actions)[:, [i]])
                ratio = (new_logp[:, 0] - _flat(b.logp)[:, i]).exp()
                m = m * torch.where(_flat(b.alive)[:, i], ratio, torch.ones_like(ratio))
        return {**log.means(), "happo_m_mean": float(m.mean())}
