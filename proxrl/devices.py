"""Where a run computes: the device of its networks and how many threads torch and numpy's BLAS take."""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_limits

from .errors import ConfigError


def limit_threads(n: int) -> None:
    """Run torch and numpy's BLAS (the MLP's numpy acting path) on ``n`` threads each. OpenBLAS otherwise takes
    every core, and two trainings side by side (seeds in a pool, Ray runners, test workers) then spin on each
    other's cores: an MLP run on 2 cores went from 2.8 s to 92 s with a second one beside it."""
    torch.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")


def resolve_device(name: str, num_params: int, convolutional: bool = False) -> torch.device:
    """``auto``: CUDA only if present and the network is large enough (≥ 1M parameters) or convolutional for a
    GPU to pay off; small MLPs are faster on the CPU, where per-step transfer and launch costs dominate."""
    big = num_params >= 1_000_000 or convolutional
    if name == "cuda" or (name == "auto" and torch.cuda.is_available() and big):
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but no CUDA device is available; use device=cpu or auto")
        return torch.device("cuda")
    return torch.device("cpu")
