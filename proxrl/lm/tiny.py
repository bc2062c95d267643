"""The starting policy of a text task trained without a model folder: a tiny causal LM over the task's characters,
warmed up by supervised training so that GRPO's first rewards are not all zero."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from ..envs.text_tasks import TextTask, char_tokenizer
from . import load_causal_lm, supervised_warmup, tiny_causal_lm

INIT_MODEL = "init_model"  # the run directory's folder holding the warmed-up model (and so π_ref's source)


class TinyModelConfig(Protocol):
    """The config keys :func:`tiny_model` reads (GRPOConfig has them)."""

    tiny_arch: str
    tiny_hidden_size: int
    tiny_layers: int
    tiny_heads: int
    warmup_steps: int
    warmup_lr: float
    seed: int


def tiny_model(task: TextTask, cfg: TinyModelConfig, device: torch.device, dtype: torch.dtype,
               run_dir: Path | None) -> tuple[Any, Any]:
    """(model, tokenizer): the task's character tokenizer and a tiny model from ``cfg``, warmed up for
    ``cfg.warmup_steps``; with a run directory it is saved to ``run_dir / "init_model"`` and loaded back through
    ``from_pretrained`` (the path any model takes)."""
    tokenizer = char_tokenizer(task.alphabet)
    model = tiny_causal_lm(tokenizer, cfg.tiny_arch, cfg.tiny_hidden_size, cfg.tiny_layers, cfg.tiny_heads)
    model.to(device)
    if cfg.warmup_steps:
        supervised_warmup(model, tokenizer, task.sample, cfg.warmup_steps, lr=cfg.warmup_lr, seed=cfg.seed)
    if run_dir is not None:
        folder = run_dir / INIT_MODEL
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return load_causal_lm(folder, dtype, str(device))
    return model.to(dtype), tokenizer
