"""The warning a central critic needs on a zero-sum game (issue 35): MAPPO's and HAPPO's critic learns the team
reward Σ_i r_i, which a zero-sum game makes 0 in every episode, so the joint advantage carries no signal of who
won. Until teams exist, such a game is IPPO's (each player its own reward and critic)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from ..errors import RunWarning

EPISODES = 8  # finished episodes, with some reward paid, before the run is called zero-sum
TOLERANCE = 1e-6


class ZeroSumCheck:
    """Watches the finished episodes' per-agent returns; warns once, in one line, when the first ``EPISODES`` that
    paid any reward all summed to 0 over the agents. Inactive for a method with local critics."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.active = method in ("mappo", "happo")
        self.zero_sum_episodes = 0

    def observe(self, agent_returns: Sequence[Sequence[float]]) -> None:
        """Count ``agent_returns`` (one row of per-agent returns per finished episode); warn at the threshold."""
        for returns in agent_returns if self.active else ():
            if abs(sum(returns)) > TOLERANCE:  # a team reward after all: nothing to say, ever
                self.active = False
                return
            self.zero_sum_episodes += any(abs(r) > TOLERANCE for r in returns)
        if self.active and self.zero_sum_episodes >= EPISODES:
            self.active = False
            warnings.warn(
                f"{self.method}: the agents' returns summed to 0 in each of {self.zero_sum_episodes} episodes: in a "
                f"zero-sum game the team reward Σ_i r_i that {self.method}'s central critic learns is always 0; "
                "train it with method=ippo (each player its own reward and critic)",
                RunWarning,
                stacklevel=2,
            )
