"""The MLP layers every actor and critic is made of: activations by name, :func:`mlp` (orthogonal init) and
:func:`run_layers` (a Sequential's forward without the per-call hooks)."""

from __future__ import annotations

import math

from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


def mlp(sizes: list[int], activation: str, ortho_init: bool, out_gain: float | None = None) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them (and after the last unless ``out_gain``
    is given, which marks an output layer); orthogonal init with gain √2 for hidden layers."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        if ortho_init:
            nn.init.orthogonal_(lin.weight, out_gain if (last and out_gain is not None) else math.sqrt(2))
            nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not (last and out_gain is not None):
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def run_layers(seq: nn.Module, x: Tensor) -> Tensor:
    """``seq(x)`` without nn.Module's per-call hook dispatch, which dominates tiny MLPs on the CPU."""
    if isinstance(seq, nn.Sequential):
        for layer in seq:
            x = layer.forward(x)
        return x
    out: Tensor = seq(x)
    return out
