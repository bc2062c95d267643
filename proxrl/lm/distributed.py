"""Data-parallel training on torch.distributed (issue 18): N processes started by ``torchrun`` (or ``accelerate
launch``, which sets the same variables) each hold the whole model, take a contiguous shard of every batch of
prompts (a prompt's group of G completions stays whole on one process), and add their gradients with one
all-reduce per optimiser step.

Written here rather than with ``DistributedDataParallel`` because the lean decoder reads the model's weights
directly instead of calling its ``forward``, which is where DDP hooks its gradient buckets; one flat all-reduce
after the micro-batches is what DDP's ``no_sync`` plus its final bucket would do. The loss is normalised by
batch-wide counts (sequences, tokens, micro-batches over all processes), so the gradients are *summed*, not
averaged, and a run on N processes takes the same step as one process over the same global batch.

Gloo on the CPU, NCCL on CUDA. Every socket stays where ``MASTER_ADDR`` points (gloo's own interface is
``GLOO_SOCKET_IFNAME``, set to the loopback interface when ``MASTER_ADDR`` is a loopback address).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

from ..errors import PeerLostError

T = TypeVar("T")
TIMEOUT_ENV = "PROXRL_DIST_TIMEOUT_S"  # seconds a collective waits for the other processes (default 1800)


@dataclass(frozen=True)
class World:
    """This process's place among the ``size`` processes of a run (``rank`` 0 logs and writes checkpoints)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    wire: str = "cpu"  # the device collectives take tensors on: "cpu" for gloo, "cuda:<local_rank>" for NCCL

    @property
    def main(self) -> bool:
        """True on the process that logs and writes (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when there is more than one process."""
        return self.size > 1

    def shard(self, count: int) -> slice:
        """This process's contiguous share of ``count`` items (``count`` divisible by ``size``)."""
        assert count % self.size == 0, (count, self.size)
        each = count // self.size
        return slice(self.rank * each, (self.rank + 1) * each)

    def split(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous share of ``items`` (sizes differ by at most one; the first get the extra)."""
        base, extra = divmod(len(items), self.size)
        start = self.rank * base + min(self.rank, extra)
        return list(items[start : start + base + (self.rank < extra)])

    def all_sum(self, tensor: Tensor, what: str) -> Tensor:
        """``tensor`` summed over the processes (on its own device). ``what`` names it in a lost-peer error."""
        if not self.active:
            return tensor
        out = tensor.detach().to(self.wire, copy=True)
        with _collective(what, self):
            torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM)
        return out.to(tensor.device)

    def all_max(self, value: int, what: str) -> int:
        """The largest ``value`` over the processes."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.long, device=self.wire)
        with _collective(what, self):
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())

    def any(self, flag: bool, what: str) -> bool:
        """True when ``flag`` is true on any process (every process gets the same answer)."""
        return bool(self.all_max(int(flag), what))

    def gather(self, tensor: Tensor, what: str) -> Tensor:
        """The processes' equal-shaped ``tensor`` s concatenated along dim 0 in rank order (on its own device)."""
        if not self.active:
            return tensor
        mine = tensor.detach().to(self.wire).contiguous()
        parts = [torch.empty_like(mine) for _ in range(self.size)]
        with _collective(what, self):
            torch.distributed.all_gather(parts, mine)
        return torch.cat(parts).to(tensor.device)

    def gather_objects(self, obj: T, what: str) -> list[T]:
        """Every process's picklable ``obj`` in rank order (tensors in it should be on the CPU)."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.size
        with _collective(what, self):
            torch.distributed.all_gather_object(out, obj)
        return out

    def sum_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Replace each parameter's gradient by its sum over the processes, in place: one all-reduce per parameter,
        all in flight at once (no flat copy of the gradients; a parameter without one counts as zero, so every
        process sends the same tensors)."""
        if not self.active:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        with _collective("the gradient all-reduce", self):
            pending = [torch.distributed.all_reduce(p.grad, async_op=True) for p in params if p.grad is not None]
            for work in pending:
                assert work is not None
                work.wait()

    def broadcast_rng(self) -> None:
        """Give every process rank 0's torch random state (the sampling stream that every process then draws in
        step: see ``decoder.next_token``'s ``rows``)."""
        if not self.active:
            return
        state = torch.get_rng_state().to(self.wire)
        with _collective("the random-state broadcast", self):
            torch.distributed.broadcast(state, src=0)
        torch.set_rng_state(state.cpu())

    def seed_own_stream(self) -> None:
        """Reseed torch's random state with one draw (the same on every process) plus the rank, so that each
        process samples a stream of its own from here (call it inside ``torch.random.fork_rng``)."""
        if self.active:
            torch.manual_seed(int(torch.randint(2**62, (1,)).item()) + self.rank)

    def barrier(self, what: str) -> None:
        """Wait until every process gets here."""
        if self.active:
            with _collective(what, self):
                torch.distributed.barrier()


SINGLE = World()


def from_environment(device: torch.device) -> World:
    """The world ``torchrun`` / ``accelerate launch`` describe in ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``,
    with its process group started (gloo on the CPU, NCCL on CUDA); :data:`SINGLE` without them."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    dist = torch.distributed
    if not dist.is_available():
        from ..errors import ConfigError

        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run one process")
    if not dist.is_initialized():
        if os.environ.get("MASTER_ADDR", "").startswith("127.") or os.environ.get("MASTER_ADDR") == "localhost":
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo otherwise binds the hostname's address
        timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "1800")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wire = f"cuda:{local_rank}" if device.type == "cuda" else "cpu"
    return World(dist.get_rank(), dist.get_world_size(), local_rank, wire)


def device_of(world: World, device: torch.device) -> torch.device:
    """The device of this process: its own GPU (``cuda:LOCAL_RANK``) on CUDA, else ``device``."""
    if device.type != "cuda" or not world.active:
        return device
    torch.cuda.set_device(world.local_rank)
    return torch.device("cuda", world.local_rank)


def close(world: World) -> None:
    """End the process group (a no-op for one process), once every process is done with its collectives: a
    process that tore its gloo pairs down while a peer still used them was seen to abort that peer at exit
    (SIGABRT, "terminate called without an active exception"; seen once, in a mutation run). The wait is
    bounded (a peer that is gone is not waited for)."""
    dist = torch.distributed
    if not (world.active and dist.is_initialized()):
        return
    if dist.get_backend() == "gloo":
        try:
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60), wait_all_ranks=True)
        except RuntimeError:
            pass  # a peer already gone or stuck: nothing more to wait for
    dist.destroy_process_group()


@contextmanager
def _collective(what: str, world: World) -> Iterator[None]:
    try:
        yield
    except RuntimeError as e:  # gloo: "Connection closed by peer", "Timed out waiting ..."; NCCL: watchdog errors
        raise PeerLostError(
            f"rank {world.rank} of {world.size}: another process stopped answering during {what} ({_first_line(e)}); "
            "training stopped. Resume from the run's last checkpoint with the same number of processes: "
            "torchrun --nproc-per-node N -m proxrl.cli train --resume RUN_DIR"
        ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
