"""Checkpoint-format migrations of a language-model trainer's state (``trainer_state.pt``), for its
``migrations`` class attribute: version v → a function from a version-v state to a version v + 1 one."""

from __future__ import annotations

from typing import Any

from ..checkpoint import Migration, drop_config_keys, rename_config_key

_drop_unused_keys = drop_config_keys("num_envs", "vectorization", "stop_return")


def migrate_2_to_3(state: dict[str, Any]) -> dict[str, Any]:
    """Format 2 → 3: the keys version 3 added, each with the meaning its absence had (no reference named: the
    loaded policy's copy is the reference; accuracies not recorded); the config loses the keys a language-model
    trainer never used (they were accepted and ignored)."""
    for key in ("reference", "warmup_accuracy", "last_sampled_accuracy", "warmup_sampled_accuracy"):
        state.setdefault(key, None)
    state.setdefault("iteration", state["global_step"])  # one update per step
    state.setdefault("recent_lengths", [])
    return _drop_unused_keys(state)


# Format 4 → 5: GRPO's aggregation became TRL's loss_type (the same reductions under TRL's names)
migrate_4_to_5 = rename_config_key(
    "aggregation", "loss_type", {"sequence": "grpo", "token": "dapo", "constant": "dr_grpo"}
)

MIGRATIONS: dict[int, Migration] = {2: migrate_2_to_3, 4: migrate_4_to_5}
