"""Running mean and variance of a critic's regression targets (MAPPO's value normalisation, Yu et al. 2022)."""

from __future__ import annotations

import math

from torch import Tensor


class ValueNormalizer:
    """Running mean and variance of the critic's targets (Welford over batches); identity when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def state(self) -> list[float]:
        """[mean, var, count] for a checkpoint."""
        return [self.mean, self.var, self.count]

    def load_state(self, state: list[float]) -> None:
        """Restore :meth:`state`."""
        self.mean, self.var, self.count = map(float, state)

    def update(self, x: Tensor) -> None:
        """Fold the batch ``x`` into the running mean and variance (no-op when disabled)."""
        if not self.enabled or x.numel() == 0:
            return
        m, v, n = float(x.mean()), float(x.var(unbiased=False)), x.numel()
        total = self.count + n
        delta = m - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + v * n + delta**2 * self.count * n / total) / total
        self.count = total

    def normalize(self, x: Tensor) -> Tensor:
        """(x − mean) / std, or x when disabled."""
        return (x - self.mean) / math.sqrt(self.var + 1e-8) if self.enabled else x

    def denormalize(self, x: Tensor) -> Tensor:
        """x · std + mean, or x when disabled."""
        return x * math.sqrt(self.var + 1e-8) + self.mean if self.enabled else x
