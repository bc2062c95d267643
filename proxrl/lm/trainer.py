"""What a trainer of language models shares, beside its update: held-out evaluation and the summary, and its
persistence as a ``save_pretrained`` folder (the policy or its LoRA adapter, the tokenizer, the reference model
where no other folder holds it, and the rest of its state as ``trainer_state.pt``). The functions are typed over
:class:`LanguageModelTrainer` and bound as methods (``save = lm.trainer.save``), as ``algos.agent``'s are for the
env-stepping trainers."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Protocol

import torch

from .. import checkpoint, config as cfgmod
from ..algos.common import rng_state, set_rng_state
from ..config import ConfigError
from ..envs.text_tasks import TextTask, sampler_state, set_sampler_state
from ..run import Trainer
from . import distributed, fsdp, load_adapter
from .critic import TokenCritic
from .distributed import World
from .evaluation import HeldOutAccuracy, accuracy_label, describe_accuracy, held_out_accuracy
from .reference import Reference


class LanguageModelTrainer(Trainer, Protocol):
    """A :class:`~proxrl.run.Trainer` of a causal language model on a text task: the attributes the functions of
    this module rely on."""

    policy: Any  # a transformers causal LM (or its PEFT wrapper)
    tokenizer: Any
    task: TextTask
    rng: random.Random  # the task's prompt sampler
    device: torch.device
    dtype: torch.dtype
    reference: Reference
    critic: TokenCritic | None
    optimizer: torch.optim.Optimizer
    held_out: HeldOutAccuracy
    world: World  # this process among a data-parallel run's (one process: distributed.SINGLE)

    @property
    def global_step(self) -> int: ...


def evaluate(
    trainer: LanguageModelTrainer, examples: int | None = None, samples: int | None = None
) -> dict[str, float]:
    """Exact-match accuracy on the task's held-out prompts (the first ``examples`` of them): greedy
    (``accuracy``) and, with ``samples`` k > 0 (default ``eval_samples``), of k completions per prompt sampled at
    the training temperature and top-p (``sampled_accuracy``)."""
    cfg = trainer.config
    with fsdp.gathered(trainer.policy):
        return held_out_accuracy(
            trainer.policy, trainer.tokenizer, trainer.task, cfg, trainer.device, examples, samples, trainer.world
        )


def describe_evaluation(
    trainer: LanguageModelTrainer,
    episodes: int = 20,
    deterministic: bool = True,
    video_dir: str | Path | None = None,
    seed: int | None = None,
) -> list[str]:
    """``proxrl eval``: held-out accuracy, greedy and (with ``eval_samples``) sampled, in one line (the episode
    arguments are the env trainers'; a language model has no episodes to record)."""
    if video_dir is not None:
        raise ConfigError(
            f"--video records env episodes; {trainer.algo} has none (its evaluation is held-out accuracy)"
        )
    cfg = trainer.config
    name = f"{trainer.algo} on {trainer.task.name}"
    return [describe_accuracy(evaluate(trainer), name, cfg.eval_samples, accuracy_label(trainer.task))]


def summary(trainer: LanguageModelTrainer, eval_episodes: int = 0) -> list[str]:
    """What the CLI prints when training ends: steps, completions and held-out accuracy before and after
    (measured at the end of ``learn``; ``eval_episodes`` is for env-stepping trainers)."""
    cfg = trainer.config
    first, *rest = trainer.held_out.describe(cfg.temperature, cfg.eval_samples, accuracy_label(trainer.task))
    done = f"done: {trainer.global_step:,} {trainer.algo.upper()} steps, {trainer.progress.num_episodes:,} completions"
    return [f"{done}; {first}", *rest]


def close(trainer: LanguageModelTrainer) -> None:
    """A language-model trainer starts no envs or runners; a data-parallel one ends its process group."""
    distributed.close(trainer.world)


def state_dict(trainer: LanguageModelTrainer) -> dict[str, Any]:
    """Everything but the weights (which go through ``save_pretrained``): optimiser, counters, RNG states, config,
    accuracies, the value head and where the reference model is kept (safe to load)."""
    return {
        "format_version": checkpoint.FORMAT_VERSION,
        "algo": trainer.algo,
        "config": cfgmod.dump(trainer.config),
        "optimizer": _optimizer_state(trainer),
        **trainer.progress.state_dict(),
        "rng": rng_state(),
        "task_rng": sampler_state(trainer.rng),
        **trainer.held_out.state_dict(),
        "value_head": None if trainer.critic is None else trainer.critic.state_dict(),
        "reference": trainer.reference.entry(),
        "python_dataset": bool(getattr(trainer, "python_dataset", False)),  # train_dataset given as an object
    }


def _sharded(trainer: LanguageModelTrainer) -> bool:
    return bool(getattr(trainer.config, "fsdp", False))  # (GRPO's key; refused unless several processes)


def _optimizer_state(trainer: LanguageModelTrainer) -> dict[str, Any]:
    """The optimiser's state; with ``fsdp`` the whole of it keyed by parameter names (a collective: rank 0 holds
    it), which any number of processes can load."""
    if _sharded(trainer):
        return {"fsdp_full": fsdp.full_optimizer_state(trainer.policy, trainer.optimizer)}
    return trainer.optimizer.state_dict()


def load_optimizer_state(trainer: LanguageModelTrainer, state: dict[str, Any], folder: Path) -> None:
    """Load a checkpoint's optimiser state (see :func:`_optimizer_state`); a checkpoint written with ``fsdp`` and
    one written without it do not load into each other's optimiser (one line says so)."""
    sharded = _sharded(trainer)
    if ("fsdp_full" in state) != sharded:
        raise ConfigError(
            f"{folder} was written with fsdp={not sharded}: resume it with --set fsdp={str(not sharded).lower()} "
            "(the optimiser's state is kept in that layout)"
        )
    if sharded:
        fsdp.load_optimizer_state(trainer.policy, trainer.optimizer, state["fsdp_full"])
    else:
        trainer.optimizer.load_state_dict(state)


def saves_together(trainer: LanguageModelTrainer) -> bool:
    """True when every process must take part in a save (``fsdp``: the weights are gathered from all of them);
    rank 0 alone writes."""
    return _sharded(trainer) and trainer.world.active


def save(trainer: LanguageModelTrainer, folder: str | Path) -> Path:
    """The policy (or its LoRA adapter) and tokenizer with ``save_pretrained``, the reference model where no other
    folder holds it, and :func:`state_dict` as ``trainer_state.pt``: a folder checkpoint
    (``checkpoint.save_folder``: a crash never leaves a half-written one). With ``fsdp`` every process calls it
    (the weights are gathered) and rank 0 writes."""
    gathered = _gather(trainer) if saves_together(trainer) else None
    if gathered is not None and not trainer.world.main:
        return Path(folder)
    return checkpoint.save_folder(folder, lambda into: _write(trainer, into, gathered))


def save_checkpoint(trainer: LanguageModelTrainer) -> Path:
    """``checkpoints/step_<N>/`` (see :func:`save`), keeping the newest ``keep_checkpoints``."""
    assert trainer.run_dir is not None
    gathered = _gather(trainer) if saves_together(trainer) else None
    if gathered is not None and not trainer.world.main:
        return trainer.run_dir / "checkpoints" / f"step_{trainer.global_step:09d}"
    return checkpoint.save_periodic_folder(
        trainer.run_dir / "checkpoints",
        trainer.global_step,
        trainer.config.keep_checkpoints,
        lambda into: _write(trainer, into, gathered),
    )


def _gather(trainer: LanguageModelTrainer) -> dict[str, Any]:
    """What a sharded trainer's rank 0 writes, gathered from every process (the collectives of a save)."""
    reference = trainer.reference.model
    return {
        "policy": fsdp.full_state_dict(trainer.policy),
        "reference": fsdp.full_state_dict(reference) if reference is not None else None,
        "state": state_dict(trainer),
    }


def _write(trainer: LanguageModelTrainer, folder: Path, gathered: dict[str, Any] | None = None) -> None:
    if gathered is None:
        trainer.policy.save_pretrained(folder)
        state = state_dict(trainer)
    else:  # fsdp: the whole weights gathered on rank 0
        trainer.policy.save_pretrained(folder, state_dict=gathered["policy"])
        state = gathered["state"]
    trainer.tokenizer.save_pretrained(folder)
    state = {**state, "reference": trainer.reference.entry(folder, trainer.run_dir)}
    trainer.reference.save_into(folder, None if gathered is None else gathered["reference"])
    checkpoint.atomic_save(state, folder / checkpoint.TRAINER_STATE)


def load(
    cls: type[LanguageModelTrainer],
    path: str | Path,
    *,
    run_dir: str | Path | None = None,
    progress: bool | None = None,
    **overrides: Any,
) -> Any:
    """Resume from a folder written by :func:`save` (or a run directory: its newest checkpoint, else its final
    ``model``). The weights load through ``from_pretrained``; a LoRA run rebuilds its base and loads the adapter."""
    data = {k: overrides.pop(k) for k in ("train_dataset", "eval_dataset") if k in overrides}
    found = checkpoint.load_newest(path, algo=cls.algo, migrations=cls.migrations)
    folder, state = found.path.parent, found.state
    if state.get("python_dataset") and data.get("train_dataset") is None:
        raise ConfigError(
            f"{path} trained on a train_dataset given in Python: pass it again, {cls.__name__}.load(path, "
            "train_dataset=...)"
        )
    values = cfgmod.read_yaml_text(state["config"])
    lora = bool(values.get("lora", False))
    values.update(overrides)
    if not lora:
        values.update(model=str(folder), warmup_steps=0)
    trainer = cls(config=cfgmod.from_dict(cls.config_class, values), run_dir=run_dir, progress=progress, **data)  # type: ignore[call-arg]
    if lora:
        load_adapter(trainer.policy, folder)
    if trainer.critic is not None and state["value_head"] is not None:
        trainer.critic.load_state_dict(state["value_head"])
    trainer.reference.restore(folder, state["reference"], trainer.dtype, str(trainer.device))
    reference = trainer.reference.model
    if _sharded(trainer) and reference is not None and not fsdp.is_sharded(reference):
        fsdp.shard(reference)  # read back whole from its folder
    load_optimizer_state(trainer, state["optimizer"], folder)
    trainer.progress.load_state_dict(state)
    trainer.held_out.load_state_dict(state)
    set_rng_state(state["rng"])
    set_sampler_state(trainer.rng, state["task_rng"])
    return trainer
