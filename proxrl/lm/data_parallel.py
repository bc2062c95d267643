"""What a data-parallel language-model run (``lm.distributed``: N processes under torchrun, each with its share of
the prompts) needs of its settings, checked once when the trainer is built, and how it splits the micro-batches."""

from __future__ import annotations

from ..errors import ConfigError
from .distributed import World


def check_data_parallel(world: World, prompts_per_step: int, grad_accum_steps: int, fsdp: bool) -> None:
    """Refuse settings a run of ``world.size`` processes cannot keep (one ``ConfigError`` naming the key each): P
    prompts split into whole shares, micro-batches counted over all processes, FSDP only under torchrun."""
    if not world.active:
        if fsdp:
            raise ConfigError(
                "fsdp shards the model over the processes of a torchrun launch, and this is one process: "
                "torchrun --nproc-per-node N -m proxrl.cli train grpo ..., or set fsdp=false"
            )
        return
    n = world.size
    if prompts_per_step % n:
        raise ConfigError(
            f"prompts_per_step={prompts_per_step} must be divisible by the {n} processes "
            "(each takes a whole share of the prompts, their groups whole)"
        )
    if grad_accum_steps > 1 and grad_accum_steps % n:
        raise ConfigError(
            f"grad_accum_steps={grad_accum_steps} counts micro-batches over all {n} processes: "
            f"set a multiple of {n} (or 1: one micro-batch per process)"
        )


def micro_batches_per_process(grad_accum_steps: int, processes: int) -> int:
    """Micro-batches each of ``processes`` runs per optimiser step: ``grad_accum_steps`` counts them over the whole
    batch, so each process runs its share; 1 (the default) means one per process."""
    return max(1, grad_accum_steps // processes)
