"""Flat Adam (a speed path, see :mod:`proxrl.fast`): a module's parameters flattened into one tensor, its
gradient-norm clip in two tensor ops, and the fused Adam kernel called directly.

Small RL networks spend more time in the per-tensor Python overhead of ``clip_grad_norm_`` and ``Adam.step``
than in arithmetic. With every parameter a view into one flat tensor (and every gradient a view into one flat
gradient), the clip is two tensor ops and Adam's fused kernel runs once: about 270 → 90 µs per minibatch for
the 64×64 actor-critic (``benchmarks/RESULTS.md``). The module keeps its ordinary parameters, state dict and
``forward``; only their storage moves. ``tests/test_fast_paths.py`` checks both against the per-tensor
originals.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FlatParameters:
    """Every parameter of ``module`` (or of a list of parameters) re-seated as a view into ``self.param`` (one
    contiguous nn.Parameter), and every gradient as a view into ``self.param.grad``; backward accumulates into
    those views in place.

    Call after moving the module to its device (``module.to`` would re-seat the parameters). Use
    :meth:`zero_grad` rather than ``module.zero_grad()`` / ``optimizer.zero_grad()``: setting grads to None
    detaches them from the flat buffer (:meth:`zero_grad` re-attaches them, so either is safe before it).
    """

    def __init__(self, module: nn.Module | list[nn.Parameter]) -> None:
        params = module.parameters() if isinstance(module, nn.Module) else module
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("the module has no trainable parameters")
        first = self.params[0]
        total = sum(p.numel() for p in self.params)
        flat = torch.empty(total, dtype=first.dtype, device=first.device)
        grad = torch.zeros_like(flat)
        self._grad_views: list[Tensor] = []
        offset = 0
        for p in self.params:
            n = p.numel()
            flat[offset : offset + n].copy_(p.detach().reshape(-1))
            p.data = flat[offset : offset + n].view_as(p)
            self._grad_views.append(grad[offset : offset + n].view_as(p))
            offset += n
        self.param = nn.Parameter(flat)
        self.param.grad = grad
        self._grad = grad
        self._attach_grads()

    def _attach_grads(self) -> None:
        for p, g in zip(self.params, self._grad_views, strict=True):
            p.grad = g

    @property
    def grad_views(self) -> list[Tensor]:
        """Each parameter's gradient as a view into the flat gradient, in ``self.params`` order."""
        return self._grad_views

    def zero_grad(self) -> None:
        """Zero the flat gradient (and re-attach any gradient someone set to None)."""
        self._grad.zero_()
        if self.params[0].grad is not self._grad_views[0] or self.param.grad is not self._grad:
            self.param.grad = self._grad
            self._attach_grads()

    def clip_grad_norm_(self, max_norm: float) -> Tensor:
        """Scale the gradient so that its global L2 norm is at most ``max_norm`` (``max_norm`` ≤ 0: no clip);
        returns the norm before, which is also the finiteness check of the whole gradient."""
        norm: Tensor = torch.linalg.vector_norm(self._grad)  # torch.linalg's stubs return Any
        if max_norm > 0:
            self._grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm


def adam_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``; for a fused CPU Adam over one flat tensor (what :func:`make_adam` builds for
    :class:`FlatParameters`) the fused kernel is called directly once its state exists: ``Optimizer.step``'s
    Python wrapper costs ~65 µs against the kernel's ~8 µs on a 9k-parameter network. Same arithmetic, same
    state tensors (``tests/test_fast_paths.py`` checks bit-identical parameters and state)."""
    if not supports(optimizer):
        optimizer.step()
        return
    group = optimizer.param_groups[0]
    params, state, kernel = group["params"], optimizer.state[group["params"][0]], torch._fused_adam_
    beta1, beta2 = group["betas"]
    state["step"].add_(1)
    kernel(
        params,
        [params[0].grad],
        [state["exp_avg"]],
        [state["exp_avg_sq"]],
        [],
        [state["step"]],
        amsgrad=False,
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=group["maximize"],
    )


def supports(optimizer: torch.optim.Optimizer) -> bool:
    """Whether :func:`adam_step` can call the fused kernel directly: a fused CPU Adam over one tensor with a
    gradient, plain settings (no amsgrad, no decoupled decay, a float lr) and its state already created by a first
    ``step()``. Otherwise ``adam_step`` is ``optimizer.step()``."""
    group = optimizer.param_groups[0]
    params = group["params"]
    if len(optimizer.param_groups) != 1 or len(params) != 1 or getattr(torch, "_fused_adam_", None) is None:
        return False
    return (
        params[0] in optimizer.state
        and isinstance(optimizer, torch.optim.Adam)
        and bool(group.get("fused"))
        and not group["amsgrad"]
        and not group.get("decoupled_weight_decay")
        and not isinstance(group["lr"], Tensor)
        and params[0].grad is not None
        and params[0].device.type == "cpu"
    )
