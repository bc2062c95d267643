"""What a trainer of language models shares, beside its update: held-out evaluation and the summary, and its
persistence as a ``save_pretrained`` folder (the policy or its LoRA adapter, the tokenizer, the reference model
where no other folder holds it, and the rest of its state as ``trainer_state.pt``). All of it is
:class:`LanguageModelTrainer`'s, the base class GRPO derives from (as the env trainers derive from
``algos.agent.EnvTrainer``)."""

from __future__ import annotations

import random
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, TypeVar

import torch
from torch import Tensor

from .. import checkpoint, config as cfgmod
from ..errors import ConfigError
from .config import LanguageModelConfig
from .text_tasks import PromptTask, sampler_state, set_sampler_state
from ..config import RunConfig
from ..run import Progress
from ..seeding import rng_state, set_rng_state
from . import distributed, fsdp
from .models import load_adapter
from .critic import TokenCritic
from .decoder import is_sharded
from .distributed import World
from .evaluation import HeldOutAccuracy, accuracy_label, describe_accuracy, held_out_accuracy
from .reference import Reference

T = TypeVar("T", bound="LanguageModelTrainer")


class Gathered(NamedTuple):
    """What a sharded trainer's rank 0 writes, gathered from every process (the collectives of a save): the
    policy's and the reference's whole weights, and the trainer's state."""

    policy: dict[str, Tensor]
    reference: dict[str, Tensor] | None
    state: dict[str, Any]


class LanguageModelTrainer:
    """The base of every trainer of a causal language model on a text task (GRPO): what it shares beside its
    update, as methods (held-out evaluation, the summary, the ``save_pretrained`` folder checkpoint and its
    resume). A trainer derives from it one level deep and sets the attributes below in ``__init__``."""

    algo: ClassVar[str]
    config_class: ClassVar[type[RunConfig]]
    final_checkpoint: ClassVar[str] = "model"  # a save_pretrained folder
    sample_unit: ClassVar[str] = "completions"
    migrations: ClassVar[Mapping[int, checkpoint.Migration]] = {}
    bench_steps: ClassVar[int]
    data_parallel: ClassVar[bool] = True  # torchrun: several processes, each a share of the prompts
    config: LanguageModelConfig
    progress: Progress
    run_dir: Path | None
    show_progress: bool | None
    policy: Any  # a transformers causal LM (or its PEFT wrapper)
    tokenizer: Any
    task: PromptTask  # a text task, or a dataset's (lm.datasets.DatasetTask)
    rng: random.Random  # the task's prompt sampler
    device: torch.device
    dtype: torch.dtype
    reference: Reference
    critic: TokenCritic | None
    optimizer: torch.optim.Optimizer
    held_out: HeldOutAccuracy
    world: World  # this process among a data-parallel run's (one process: distributed.SINGLE)
    python_dataset: bool = False  # train_dataset given as an object (not a path): load must be given it again

    @property
    def global_step(self) -> int:
        """GRPO steps trained so far."""
        return self.progress.global_step

    @property
    def method(self) -> str:
        """The name the run is shown under: ``algo``."""
        return self.algo

    def evaluate(self, examples: int | None = None, samples: int | None = None) -> dict[str, float | None]:
        """Exact-match accuracy on the task's held-out prompts (the first ``examples`` of them): greedy
        (``accuracy``; None without held-out prompts) and, with ``samples`` k > 0 (default ``eval_samples``), of k
        completions per prompt sampled at the training temperature and top-p (``sampled_accuracy``)."""
        cfg = self.config
        with fsdp.gathered(self.policy):
            return held_out_accuracy(
                self.policy, self.tokenizer, self.task, cfg, self.device, examples, samples, self.world
            )

    def describe_evaluation(
        self,
        episodes: int = 20,
        deterministic: bool = True,
        video_dir: str | Path | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """``proxrl eval``: held-out accuracy, greedy and (with ``eval_samples``) sampled, in one line (the episode
        arguments are the env trainers'; a language model has no episodes to record)."""
        if video_dir is not None:
            raise ConfigError(
                f"--video records env episodes; {self.algo} has none (its evaluation is held-out accuracy)"
            )
        cfg = self.config
        name = f"{self.algo} on {self.task.name}"
        return [describe_accuracy(self.evaluate(), name, cfg.eval_samples, accuracy_label(self.task))]

    def describe(self) -> list[str]:
        """What the CLI prints before training: the language model and how many of its parameters train."""
        params = list(self.policy.parameters())
        trained = sum(p.numel() for p in params if p.requires_grad)
        name = type(self.policy).__name__
        return [f"network: {name}, {sum(p.numel() for p in params):,} parameters ({trained:,} trained)"]

    def summary(self, eval_episodes: int = 0) -> list[str]:
        """What the CLI prints when training ends: steps, completions and held-out accuracy before and after
        (measured at the end of ``learn``; ``eval_episodes`` is for env-stepping trainers)."""
        cfg = self.config
        first, *rest = self.held_out.describe(cfg.temperature, cfg.eval_samples, accuracy_label(self.task))
        done = f"done: {self.global_step:,} {self.algo.upper()} steps, {self.progress.num_episodes:,} completions"
        return [f"{done}; {first}", *rest]

    def close(self) -> None:
        """A language-model trainer starts no envs or runners; a data-parallel one ends its process group."""
        distributed.close(self.world)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights (which go through ``save_pretrained``): optimiser, counters, RNG states, config,
        accuracies, the value head and where the reference model is kept (safe to load)."""
        return {
            "format_version": checkpoint.FORMAT_VERSION,
            "algo": self.algo,
            "config": cfgmod.dump(self.config),
            "optimizer": self._optimizer_state(),
            **self.progress.state_dict(),
            "rng": rng_state(),
            "task_rng": sampler_state(self.rng),
            **self.held_out.state_dict(),
            "value_head": None if self.critic is None else self.critic.state_dict(),
            "reference": self.reference.entry(),
            "python_dataset": self.python_dataset,
        }

    def _sharded(self) -> bool:
        return self.config.fsdp  # (refused unless several processes)

    def _optimizer_state(self) -> dict[str, Any]:
        """The optimiser's state; with ``fsdp`` the whole of it keyed by parameter names (a collective: rank 0 holds
        it), which any number of processes can load."""
        if self._sharded():
            return {"fsdp_full": fsdp.full_optimizer_state(self.policy, self.optimizer)}
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict[str, Any], folder: Path) -> None:
        """Load a checkpoint's optimiser state (see :func:`_optimizer_state`); a checkpoint written with ``fsdp`` and
        one written without it do not load into each other's optimiser (one line says so)."""
        sharded = self._sharded()
        if ("fsdp_full" in state) != sharded:
            raise ConfigError(
                f"{folder} was written with fsdp={not sharded}: resume it with --set fsdp={str(not sharded).lower()} "
                "(the optimiser's state is kept in that layout)"
            )
        if sharded:
            fsdp.load_optimizer_state(self.policy, self.optimizer, state["fsdp_full"])
        else:
            self.optimizer.load_state_dict(state)

    def saves_together(self) -> bool:
        """True when every process must take part in a save (``fsdp``: the weights are gathered from all of them);
        rank 0 alone writes."""
        return self._sharded() and self.world.active

    def save(self, folder: str | Path) -> Path:
        """The policy (or its LoRA adapter) and tokenizer with ``save_pretrained``, the reference model where no other
        folder holds it, and :func:`state_dict` as ``trainer_state.pt``: a folder checkpoint
        (``checkpoint.save_folder``: a crash never leaves a half-written one). With ``fsdp`` every process calls it
        (the weights are gathered) and rank 0 writes."""
        gathered = self._gather() if self.saves_together() else None
        if gathered is not None and not self.world.main:
            return Path(folder)
        return checkpoint.save_folder(folder, lambda into: self._write(into, gathered))

    def save_checkpoint(self) -> Path:
        """``checkpoints/step_<N>/`` (see :func:`save`), keeping the newest ``keep_checkpoints``."""
        assert self.run_dir is not None
        gathered = self._gather() if self.saves_together() else None
        if gathered is not None and not self.world.main:
            return self.run_dir / "checkpoints" / f"step_{self.global_step:09d}"
        return checkpoint.save_periodic_folder(
            self.run_dir / "checkpoints",
            self.global_step,
            self.config.keep_checkpoints,
            lambda into: self._write(into, gathered),
        )

    def _gather(self) -> Gathered:
        """What a sharded trainer's rank 0 writes, gathered from every process (the collectives of a save)."""
        reference = self.reference.model
        return Gathered(
            policy=fsdp.full_state_dict(self.policy),
            reference=fsdp.full_state_dict(reference) if reference is not None else None,
            state=self.state_dict(),
        )

    def _write(self, folder: Path, gathered: Gathered | None = None) -> None:
        if gathered is None:
            self.policy.save_pretrained(folder)
            state = self.state_dict()
        else:  # fsdp: the whole weights gathered on rank 0
            self.policy.save_pretrained(folder, state_dict=gathered.policy)
            state = gathered.state
        self.tokenizer.save_pretrained(folder)
        state = {**state, "reference": self.reference.entry(folder, self.run_dir)}
        self.reference.save_into(folder, None if gathered is None else gathered.reference)
        checkpoint.atomic_save(state, folder / checkpoint.TRAINER_STATE)

    @classmethod
    def load(
        cls: type[T],
        path: str | Path,
        *,
        run_dir: str | Path | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> T:
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
        # the saved config below the overrides, each layer's other names (TRL's) made keys before it is laid over
        config = cfgmod.resolve(cls.config_class, base=values, overrides=overrides)
        if not lora:
            config = cfgmod.resolve(cls.config_class, base=config, overrides={"model": str(folder), "warmup_steps": 0})
        build: Callable[..., T] = cls  # every trainer's constructor takes these keywords
        trainer = build(config=config, run_dir=run_dir, progress=progress, **data)
        if lora:
            load_adapter(trainer.policy, folder)
        if trainer.critic is not None and state["value_head"] is not None:
            trainer.critic.load_state_dict(state["value_head"])
        trainer.reference.restore(folder, state["reference"], trainer.dtype, str(trainer.device))
        reference = trainer.reference.model
        if trainer._sharded() and reference is not None and not is_sharded(reference):
            fsdp.shard(reference)  # read back whole from its folder
        trainer.load_optimizer_state(state["optimizer"], folder)
        trainer.progress.load_state_dict(state)
        trainer.held_out.load_state_dict(state)
        set_rng_state(state["rng"])
        set_sampler_state(trainer.rng, state["task_rng"])
        return trainer
