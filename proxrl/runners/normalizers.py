"""Merging the runners' normalisation statistics (``norm_obs``, ``norm_reward``) into the learner's, as RLlib's
``sync_env_runner_states`` does: every call hands each runner the run's statistics; its gymnasium wrappers go on
updating them with what its envs see; the learner takes from each runner only what was added during the call and
folds those parts into the run's statistics with gymnasium's own parallel-moments update (Chan et al.), in runner
order. Nothing is counted twice, and no runner's view drifts from the others' for more than one rollout.

Statistics are ``Normalizers.state()`` dicts: ``{"obs"|"reward": {"mean", "var", "count"}}``. gymnasium merges
moments but has no inverse, so :func:`added_moments` (the same formula solved for the added part) is written here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.wrappers.utils import update_mean_var_count_from_moments


def added_moments(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """The (mean, var, count) of the data whose merge into ``before`` gave ``after``, per statistic; a statistic
    that received nothing is left out."""
    out = {}
    for name, now in after.items():
        was = before[name]
        n, n_a = float(now["count"]), float(was["count"])
        n_b = n - n_a
        if n_b <= 0:
            continue
        mean, mean_a = np.asarray(now["mean"], np.float64), np.asarray(was["mean"], np.float64)
        var, var_a = np.asarray(now["var"], np.float64), np.asarray(was["var"], np.float64)
        mean_b = (n * mean - n_a * mean_a) / n_b
        m2_b = var * n - var_a * n_a - (mean_b - mean_a) ** 2 * n_a * n_b / n
        out[name] = {"mean": mean_b.tolist(), "var": np.maximum(m2_b / n_b, 0.0).tolist(), "count": n_b}
    return out


def merge_added(base: dict[str, Any], added: list[dict[str, Any]]) -> dict[str, Any]:
    """``base`` with each of ``added`` (from :func:`added_moments`) merged in, in order."""
    out = {}
    for name, stats in base.items():
        mean, var, count = np.asarray(stats["mean"], np.float64), np.asarray(stats["var"], np.float64), stats["count"]
        for part in added:
            if name in part:
                # gymnasium leaves this function unannotated: its (mean, var, count) are numpy arrays and a float
                mean, var, count = update_mean_var_count_from_moments(  # type: ignore[no-untyped-call]
                    mean, var, count, np.asarray(part[name]["mean"]), np.asarray(part[name]["var"]), part[name]["count"]
                )
        out[name] = {"mean": np.asarray(mean).tolist(), "var": np.asarray(var).tolist(), "count": float(count)}
    return out
