"""GRPO runs for tests/test_grpo_distributed.py: ``python tests/dp_runs.py OUT`` (one process) or the same under
``torchrun --nproc-per-node 2`` trains each case of ``CASES`` for 3 steps and writes its weights and logged rows
to ``OUT/<case>.pt`` (rank 0)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from proxrl import GRPO

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
}
LOGGED = ("reward", "completion_tokens", "loss", "kl", "clip_frac", "grad_norm", "accuracy", "sampled_accuracy")


def main(out: Path) -> None:
    agent = None
    for name, case in CASES.items():
        rows: list[dict[str, float]] = []
        agent = GRPO("addition", **SETTINGS, **case)
        start = {k: v.detach().clone() for k, v in agent.policy.state_dict().items()}
        agent.learn(3, callback=lambda _, row, rows=rows: rows.append({k: row[k] for k in LOGGED}))
        weights = {k: v.detach().clone() for k, v in agent.policy.state_dict().items()}
        if agent.world.main:
            torch.save({"start": start, "weights": weights, "rows": rows}, out / f"{name}.pt")
    assert agent is not None
    agent.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
