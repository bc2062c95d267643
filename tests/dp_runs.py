"""GRPO runs for tests/test_grpo_distributed.py: ``python tests/dp_runs.py OUT`` (one process) or the same under
``torchrun --nproc-per-node 2`` trains each case of ``CASES`` for 3 steps and writes its weights and logged rows
to ``OUT/<case>.pt`` (rank 0). A case with ``fsdp`` shards the model under torchrun, and runs unsharded in one
process (the run it must equal)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

from proxrl import GRPO
from proxrl.lm import fsdp

# a tiny model and batch: P = 4 prompts (2 per process), G = 4, μ = 2, two micro-batches, β > 0, the batch's std
SETTINGS: dict[str, Any] = {
    "tiny_hidden_size": 16,
    "tiny_layers": 1,
    "tiny_heads": 2,
    "warmup_steps": 5,
    "prompts_per_step": 4,
    "group_size": 4,
    "max_new_tokens": 4,
    "lr": 1e-2,
    "num_iterations": 2,
    "grad_accum_steps": 2,
    "beta": 0.1,
    "scale_rewards": "batch",
    "eval_every": 0,
    "eval_examples": 6,
    "eval_samples": 2,
    "tensorboard": False,
    "progress": False,
    "torch_threads": 1,
}
CASES: dict[str, dict[str, Any]] = {
    "grpo": {"loss_type": "grpo"},
    "bnpo": {"loss_type": "bnpo"},
    "dr_grpo": {"loss_type": "dr_grpo"},
    "dapo": {"loss_type": "dapo", "clip_eps_high": 0.28},
    "gspo": {"loss_type": "grpo", "importance_sampling_level": "sequence"},
    "luspo": {"loss_type": "luspo", "importance_sampling_level": "sequence"},
    "vespo": {"loss_type": "vespo"},
    # step 1 drops a flat group and samples a second round (measured): the batch mixes both processes' groups
    "dapo_dynamic": {"loss_type": "dapo", "dynamic_sampling": True, "max_sampling_rounds": 3},
    "fsdp_dapo": {"loss_type": "dapo", "clip_eps_high": 0.28, "fsdp": True},
    "fsdp_grpo": {"loss_type": "grpo", "fsdp": True},
}
LOGGED = ("reward", "completion_tokens", "loss", "kl", "clip_frac", "grad_norm", "accuracy", "sampled_accuracy")
SAMPLING = ("sampling/flat_groups_generated", "sampling/rounds", "sampling/groups_dropped", "sampling/flat_groups_kept")


def _weights(agent: GRPO) -> dict[str, torch.Tensor]:
    """The policy's whole weights (gathered on rank 0 when they are FSDP shards)."""
    return fsdp.full_state_dict(agent.policy) if agent.config.fsdp else agent.policy.state_dict()


def main(out: Path) -> None:
    agent = None
    for name, case in CASES.items():
        rows: list[dict[str, float]] = []
        sharded = bool(case.get("fsdp")) and int(os.environ.get("WORLD_SIZE", "1")) > 1
        agent = GRPO("addition", **SETTINGS, **{**case, "fsdp": sharded})
        start = {k: v.detach().clone() for k, v in _weights(agent).items()}
        agent.learn(
            3, callback=lambda _, row, rows=rows: rows.append({k: row[k] for k in LOGGED + SAMPLING if k in row})
        )
        weights = {k: v.detach().clone() for k, v in _weights(agent).items()}
        if agent.world.main:
            torch.save({"start": start, "weights": weights, "rows": rows}, out / f"{name}.pt")
    assert agent is not None
    agent.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
