"""Sharded data-parallel training (``fsdp: true``, issue 18): under ``torchrun`` each process keeps 1/N of the
policy's and the reference's weights, gradients and Adam state, with torch's own FSDP2 (``fully_shard``) doing the
gathers and the gradient reduce-scatter. It is for a model whose training state does not fit one device; a model
that fits trains faster with plain data parallelism (``lm.distributed``), which holds everything everywhere.

- Each decoder layer (the model's ``_no_split_modules`` classes, as accelerate and TRL wrap them) is one FSDP unit,
  and the root module holds the rest (embeddings, final norm, LM head).
- Gradients are summed over the processes, not averaged: the loss is normalised by batch-wide counts, as in
  ``lm.distributed``, so N processes take the step one process takes over the same global batch.
- Generation and evaluation run inside :func:`gathered`: the whole model is gathered once, the lean decoder or
  ``model.generate`` runs on ordinary tensors with no collective per token (each process may stop at its own
  length), and the weights are sharded again after. This is what TRL does under FSDP / ZeRO-3 for generation; it
  needs one full copy of the weights (not of the gradients or Adam state) while generating.
- Checkpoints gather full state dicts: every process takes part, rank 0 writes the ``save_pretrained`` folder, so a
  run resumes on any number of processes (and the saved model loads anywhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .decoder import is_sharded, lean_decoder

if TYPE_CHECKING:
    from torch.distributed.fsdp import FSDPModule


def fsdp_modules(model: nn.Module) -> list[FSDPModule]:
    """The FSDP units of ``model`` (innermost first), or [] when it is not sharded."""
    from torch.distributed.fsdp import FSDPModule

    return [m for m in reversed(list(model.modules())) if isinstance(m, FSDPModule)]


def layer_classes(model: nn.Module) -> set[type]:
    """The classes of ``model``'s decoder layers: its ``_no_split_modules`` (transformers' name for the blocks that
    must stay whole on one device)."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    return {type(m) for m in model.modules() if type(m).__name__ in names}


def shard(model: nn.Module) -> None:
    """Shard ``model`` over the default process group in place: each decoder layer, then the root; gradients summed
    over the processes. Its lean decoder is checked first, while the weights are whole (see :func:`gathered`)."""
    from torch.distributed.fsdp import fully_shard

    lean_decoder(model)
    classes = layer_classes(model)
    if not classes:
        from ..errors import ConfigError

        raise ConfigError(
            f"fsdp: {type(model).__name__} names no decoder layer class (_no_split_modules); train it without fsdp"
        )
    for module in list(model.modules()):
        if type(module) in classes:
            fully_shard(module)
    fully_shard(model)
    for unit in fsdp_modules(model):
        unit.set_gradient_divide_factor(1.0)  # a sum: the losses are already divided by batch-wide counts
        unit.set_force_sum_reduction_for_comms(True)  # as a plain SUM (gloo has no pre-multiplied sum)


@contextmanager
def gathered(model: nn.Module) -> Iterator[None]:
    """Within the block ``model``'s weights are whole, ordinary tensors on every process, and a forward pass makes no
    collective call (so generation may take a different number of steps on each process); a no-op for a model that
    is not sharded."""
    units = fsdp_modules(model) if is_sharded(model) else []
    if not units:
        yield
        return
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
    for unit in units:
        unit.unshard()
    try:
        with torch.no_grad():
            yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True, recurse=False)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state dict on the CPU, on rank 0 (empty on the others: every process must call this),
    without the second name of a tied weight (e.g. ``lm_head.weight`` = the embeddings), as ``save_pretrained``
    writes it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    first = {name for name, _ in model.named_parameters()}
    aliases = {name for name, _ in model.named_parameters(remove_duplicate=False)} - first
    whole: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        assert isinstance(v, torch.Tensor), k  # a model's full state dict: tensors, no nested optimiser values
        if k not in aliases:
            whole[k] = v
    return whole


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser's whole state keyed by parameter names, on rank 0 (empty on the others; a collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a state written by :func:`full_optimizer_state` into the sharded optimiser (every process passes the
    whole state and keeps its shard)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=options)
