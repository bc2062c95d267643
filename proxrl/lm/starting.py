"""The policy a language-model run starts from: a local model folder (``model``), or the task's tiny causal LM over
its characters, warmed up by supervised training so that GRPO's first rewards are not all zero."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .text_tasks import PromptTask, TextTask, char_tokenizer
from .models import load_causal_lm, tiny_causal_lm
from .warmup import supervised_warmup
from .config import LanguageModelConfig
from .distributed import SINGLE, World

INIT_MODEL = "init_model"  # the run directory's folder holding the warmed-up tiny model


def starting_policy(
    task: PromptTask | None,
    cfg: LanguageModelConfig,
    device: torch.device,
    dtype: torch.dtype,
    run_dir: Path | None,
    world: World = SINGLE,
) -> tuple[Any, Any, str | None]:
    """(model, tokenizer, source): ``cfg.model`` loaded with ``from_pretrained``, or the task's tiny model
    (:func:`tiny_model`); ``source`` is the absolute folder the weights were read from (the reference model's on
    resume), or None for a tiny model trained without a run directory. Data-parallel (``world``), the main
    process warms the tiny model up and saves it, the others load it from there, and all continue from the main
    process's random state (each process warms up alike without a run directory). ``task``: a text task, or None
    (a dataset's run, which has a model)."""
    if cfg.model is not None:
        return (*load_causal_lm(cfg.model, dtype, str(device)), str(Path(cfg.model).resolve()))
    # a tiny model is built for a text task: a dataset needs cfg.model (LanguageModelConfig.validate, GRPO refuse it)
    assert isinstance(task, TextTask), "a run without a model trains on a text task"
    if world.active and run_dir is not None:
        if world.main:
            tiny_model(task, cfg, device, dtype, run_dir)
        world.barrier("the warm-up of the tiny model (on rank 0)")
        model, tokenizer = load_causal_lm(run_dir / INIT_MODEL, dtype, str(device))
        world.broadcast_rng()
    else:
        model, tokenizer = tiny_model(task, cfg, device, dtype, run_dir)
    return model, tokenizer, str((run_dir / INIT_MODEL).resolve()) if run_dir is not None else None


def tiny_model(
    task: TextTask, cfg: LanguageModelConfig, device: torch.device, dtype: torch.dtype, run_dir: Path | None
) -> tuple[Any, Any]:
    """(model, tokenizer): the task's character tokenizer and a tiny model from ``cfg``, warmed up for
    ``cfg.warmup_steps``; with a run directory it is saved to ``run_dir / "init_model"`` and loaded back through
    ``from_pretrained`` (the path any model takes)."""
    tokenizer = task.tokenizer() if task.tokenizer is not None else char_tokenizer(task.alphabet)
    model = tiny_causal_lm(
        tokenizer, cfg.tiny_arch, cfg.tiny_hidden_size, cfg.tiny_layers, cfg.tiny_heads, task.max_length
    )
    model.to(device)
    if cfg.warmup_steps:
        supervised_warmup(
            model,
            tokenizer,
            task.sample,
            cfg.warmup_steps,
            lr=cfg.warmup_lr,
            seed=cfg.seed,
            target=cfg.warmup_target,
            score=task.accuracy,
            max_new_tokens=cfg.max_new_tokens,
        )
    if run_dir is not None:
        folder = run_dir / INIT_MODEL
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return load_causal_lm(folder, dtype, str(device))
    return model.to(dtype), tokenizer
