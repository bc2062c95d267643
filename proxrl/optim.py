"""Building Adam for any trainer: the fused kernel where torch has one, else the multi-tensor (foreach) one.

(The flat-parameter Adam step of the small RL networks is a speed path: :mod:`proxrl.fast.flat_adam`.)
"""

from __future__ import annotations

import torch
from torch import nn


def make_adam(
    params: list[nn.Parameter], lr: float, eps: float, weight_decay: float | None = None
) -> torch.optim.Optimizer:
    """Adam (AdamW with decoupled ``weight_decay`` when it is given) with the fastest available step
    implementation: fused, then foreach (the default per-tensor loop costs ~8 ms a step on a 1M-parameter LM)."""
    try:
        return _adam(params, lr, eps, weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return _adam(params, lr, eps, weight_decay, fused=False)


def _adam(
    params: list[nn.Parameter], lr: float, eps: float, weight_decay: float | None, fused: bool
) -> torch.optim.Optimizer:
    """Adam or AdamW with the fused step (``fused``) or the foreach one; the other flag stays at torch's default
    (None)."""
    fused_flag, foreach_flag = (True, None) if fused else (None, True)
    if weight_decay is None:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=fused_flag, foreach=foreach_flag)
    return torch.optim.AdamW(params, lr=lr, eps=eps, weight_decay=weight_decay, fused=fused_flag, foreach=foreach_flag)
