"""A runner of multi-agent PPO (IPPO / MAPPO / HAPPO): M copies of the PettingZoo env in a
:class:`~proxrl.marl.collector.MultiAgentCollector` with a CPU copy of the multi-agent actor-critic, returning a
whole ``MultiAgentBatch`` fragment per call. The group (:mod:`.group`) puts the runners' copies side by side, as
one collector's N·M copies would be.

The multi-agent policies sample with torch (no numpy acting path), so a run is reproducible for a fixed layout of
runners but not equal to the local collector's: each runner seeds its own torch generator from (seed, index), and
its copies' resets from (seed, step count, index).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import torch
from torch.nn.utils import vector_to_parameters

from ..envs import snapshot
from ..marl.batch import MultiAgentBatch
from ..marl.collector import MultiAgentCollector
from ..marl.envs import FramePreprocessing, agent_spec, load_pettingzoo
from ..marl.networks import build_networks
from .runner import SEED_STRIDE, Fragment, RunnerBase, Sync


class MultiAgentRunner(RunnerBase):
    """Runner ``index`` of ``config.num_runners`` for multi-agent PPO: ``num_envs // num_runners`` copies, built at
    its first :meth:`sample`; its networks load the learner's parameters whenever their version changes."""

    def __init__(self, config: Any, index: int) -> None:
        super().__init__(config, index)
        self.kind, self.make_env = load_pettingzoo(config.env, config.env_kwargs, FramePreprocessing.of(config))
        probe = self.make_env()
        self.spec = agent_spec(probe, self.kind, config.global_state, config.policy, config.image_channels)
        probe.close()
        self.policy, _, _ = build_networks(self.spec, config)
        self.collector: MultiAgentCollector | None = None

    def _start(self, global_step: int) -> MultiAgentCollector:
        cfg = self.config
        seed = cfg.seed + global_step + self.index * SEED_STRIDE
        collector = MultiAgentCollector(
            self.kind, self.make_env, self.spec, self.policy, self.num_envs, cfg.num_steps, seed, torch.device("cpu")
        )
        saved, self.saved = self.saved, None
        if saved is not None:
            try:
                snapshot.restore(collector, saved)
            except ValueError as e:
                self.resume_problem = str(e)
        return collector

    def sample(self, weights: np.ndarray, sync: Sync) -> Fragment:
        """Load ``weights`` (every network's parameters as one vector) if their version is new, then collect
        ``num_steps`` rows from its copies."""
        if sync.version != self.version:
            vector_to_parameters(torch.from_numpy(np.array(weights)), self.policy.parameters())
            self.version = sync.version
        if self.collector is None:
            self.collector = self._start(sync.global_step)
        self.policy.eval()
        batch = self._in_own_torch_stream(self.collector.collect)
        agent_returns = list(self.collector.episodes.agent_returns)
        returns, lengths = self.collector.episodes.drain()
        arrays = {f.name: getattr(batch, f.name) for f in fields(MultiAgentBatch)}
        return Fragment(
            index=self.index,
            version=self.version,
            arrays={name: None if value is None else value.numpy() for name, value in arrays.items()},
            returns=list(returns),
            lengths=list(lengths),
            ended_at=None,
            steps_taken=self.config.num_steps * self.num_envs,
            obs=np.zeros(0, np.float32),
            acting_rng=None,
            resume_problem=self._take_resume_problem(),
            agent_returns=agent_returns,
        )

    def state(self) -> dict[str, Any] | None:
        """Its copies' state and their place in their episodes (None before its first sample)."""
        return None if self.collector is None else snapshot.snapshot(self.collector)

    def close(self) -> None:
        """Close its copies."""
        if self.collector is not None:
            self.collector.close()
