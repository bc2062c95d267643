"""The logged stats of one language-model training step: the update's (μ passes over M micro-batches of a
generation batch, :class:`StepStats`) and the rest of the step's row (:func:`step_row`)."""

from __future__ import annotations

import collections
import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .distributed import SINGLE, World

from .evaluation import HeldOutAccuracy

if TYPE_CHECKING:
    from . import Generations

TOKEN_STATS = ("clip_frac", "clip_frac_low", "clip_frac_high", "kl")  # per-token means of the loss's stats


class StepStats:
    """Loss terms averaged over the μ passes; the per-token stats (``TOKEN_STATS``) as the batch's per-token mean,
    each micro-batch weighted by its share of the batch's tokens; other values as last set."""

    def __init__(
        self,
        mask: Tensor,
        num_tokens: Tensor,
        micro_batches: int,
        passes: int,
        per_sequence: bool = False,
        processes: int = 1,
    ) -> None:
        """``mask`` ``[B, L]`` of the batch, ``num_tokens`` the whole batch's token count (at least 1);
        ``per_sequence``: the clip fractions are shares of completions (GSPO's sequence-level ratio), so
        micro-batches weigh by their rows. Data-parallel: ``mask`` is this process's share, of ``processes`` equal
        ones, ``micro_batches`` its own; every stat but ``grad_norm`` is then this process's part of the batch's
        value, and the batch's is their sum (:meth:`result`)."""
        self.passes = passes
        micro = mask.shape[0] // micro_batches
        self.shares = (mask.view(micro_batches, micro, -1).sum((1, 2)) / num_tokens / passes).tolist()
        self.clip_shares = [1 / (micro_batches * processes) / passes] * micro_batches if per_sequence else self.shares
        self.totals: dict[str, float] = collections.defaultdict(float)
        self.maxima: set[str] = set()  # stats that are the batch's maximum, not a sum of parts

    def add_loss(self, name: str, value: Tensor) -> None:
        """One micro-batch's loss term ``name`` (a scalar)."""
        self.totals[name] += value.item() / self.passes

    def add(self, k: int, loss: Tensor, stats: dict[str, Tensor]) -> None:
        """Micro-batch ``k``'s total ``loss`` and the loss's ``stats``."""
        self.add_loss("loss", loss)
        for key in TOKEN_STATS:
            self.totals[key] += stats[key].item() * (self.shares[k] if key == "kl" else self.clip_shares[k])

    def add_token_means(self, k: int, stats: dict[str, Tensor]) -> None:
        """Micro-batch ``k``'s per-token means ``stats``, each added as its share of the batch's per-token mean."""
        for key, value in stats.items():
            self.totals[key] += value.item() * self.shares[k]

    def max(self, name: str, value: Tensor) -> None:
        """``name`` is the largest ``value`` seen in the step (over micro-batches, passes and processes)."""
        self.maxima.add(name)
        self.totals[name] = max(self.totals.get(name, -math.inf), value.item())

    def set(self, name: str, value: float) -> None:
        """A value that is not summed (e.g. the last pass's gradient norm)."""
        self.totals[name] = value

    def result(self, world: World = SINGLE) -> dict[str, float]:
        """The step's stats, in the order they were first added (data-parallel: summed over the processes, but the
        gradient norm, which is already the batch's)."""
        if not world.active:
            return dict(self.totals)
        keys = [k for k in self.totals if k != "grad_norm" and k not in self.maxima]
        summed = world.all_sum(torch.tensor([self.totals[k] for k in keys], dtype=torch.float64), "the step's stats")
        out = {k: summed[keys.index(k)].item() if k in keys else v for k, v in self.totals.items()}
        for k in sorted(self.maxima):
            out[k] = world.gather(torch.tensor([self.totals[k]], dtype=torch.float64), "the step's maxima").max().item()
        return out


def step_row(
    rewards: Tensor, gens: Generations, held_out: HeldOutAccuracy, sampled: bool, seconds: float, world: World = SINGLE
) -> dict[str, float | None]:
    """A step's logged row besides the session's timing and the update's stats: the rewards ``[P·G]``, completion
    lengths in tokens (mean, min, max; ``gens``: the step's ``lm.Generations``, this process's share of the batch
    when data-parallel) and the share truncated at max_new_tokens, the latest held-out accuracy (and the sampled
    one, if ``sampled``), and the throughput of the step's generation and update (``seconds`` in all)."""
    lengths = world.gather(gens.mask.sum(1).float().cpu(), "the completion lengths")
    tokens = lengths.sum().item()
    truncated = (
        world.gather(gens.truncated.float().cpu(), "the truncated flags").mean().item()
        if gens.truncated is not None
        else None
    )
    return {
        "reward": rewards.mean().item(),
        "reward_std": rewards.std().item(),
        "completion_length": lengths.mean().item(),
        "completion_length_min": lengths.min().item(),
        "completion_length_max": lengths.max().item(),
        "truncated_frac": truncated,
        "accuracy": held_out.last,
        **held_out.metrics,
        **({"sampled_accuracy": held_out.last_sampled} if sampled else {}),
        "completions": rewards.numel(),
        "completions_per_second": rewards.numel() / seconds,
        "tokens_per_second": tokens / seconds,
        "completion_tokens": tokens,
    }
