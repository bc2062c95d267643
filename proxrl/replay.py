"""A replay memory of past rollouts for off-policy policy gradient: each entry keeps the behaviour policy's
log-probabilities log β(a|s) next to the transitions, so later updates can weight them by π/β."""

from __future__ import annotations

import random
from dataclasses import dataclass

from torch import Tensor

from .rollout import Batch


@dataclass
class StoredRollout:
    """One rollout ``[T, N]`` (copied out of the rollout's reused buffers) and the observation after its last step
    ``[N, *obs_shape]`` for bootstrapping. ``logp`` is log β(a|s) of the policy that collected it."""

    obs: Tensor
    actions: Tensor
    logp: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    valid: Tensor
    last_obs: Tensor

    @classmethod
    def copy_of(cls, batch: Batch, last_obs: Tensor) -> StoredRollout:
        return cls(
            batch.obs.clone(),
            batch.actions.clone(),
            batch.logp.clone(),
            batch.rewards.clone(),
            batch.terminated.clone(),
            batch.truncated.clone(),
            batch.valid.clone(),
            last_obs.clone(),
        )


class ReplayMemory:
    """The last ``capacity`` rollouts (oldest dropped first), sampled uniformly."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.capacity = capacity
        self.items: list[StoredRollout] = []
        self._next = 0
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: StoredRollout) -> None:
        """Store ``item``, overwriting the oldest once full."""
        if len(self.items) < self.capacity:
            self.items.append(item)
        else:
            self.items[self._next] = item
        self._next = (self._next + 1) % self.capacity

    def sample(self) -> StoredRollout:
        """One stored rollout, uniformly at random."""
        return self.items[self.rng.randrange(len(self.items))]
