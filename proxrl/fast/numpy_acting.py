"""Numpy acting: the acting forward pass of a small CPU actor-critic in numpy (a speed path, see :mod:`proxrl.fast`).

For the small batches of acting (one row per env) numpy's per-call cost is a few µs against torch's tens, which
makes acting several times faster. The arrays are views of the policy's parameters, which the optimiser updates
in place, so they always hold the current weights. ``supports`` says where it applies (else the rollout uses the
torch path); ``tests/test_fast_paths.py`` checks it against the torch policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from ..distributions import GSDE_VAR_EPS
from ..policies import ACTIVATIONS, ActorCritic


class ActingDraws(Protocol):
    """Where numpy acting draws its random numbers: a numpy ``Generator``, or a Ray runner's share of the run's
    draws (:class:`~proxrl.runners.runner.SliceOfDraws`)."""

    def random(self, shape: tuple[int, ...], /) -> np.ndarray:
        """Uniform [0, 1) numbers of ``shape``."""
        ...

    def standard_normal(self, shape: tuple[int, ...], /, *, dtype: type[np.float32]) -> np.ndarray:
        """Standard normal numbers of ``shape``."""
        ...


Activation = Callable[[np.ndarray], np.ndarray]
NumpyLayer = tuple[np.ndarray, np.ndarray, Activation | None]  # W (transposed), b, the activation after it
_NP_ACTIVATIONS: dict[type[nn.Module], Activation] = {nn.Tanh: np.tanh, nn.ReLU: lambda x: np.maximum(x, 0.0)}


def _numpy_layers(seq: nn.Module) -> list[NumpyLayer]:
    """(W, b, activation) per Linear of ``seq`` as numpy *views* of the torch parameters (no copies)."""
    layers: list[NumpyLayer] = []
    for m in seq.children() if isinstance(seq, nn.Sequential) else [seq]:
        if isinstance(m, nn.Linear):
            layers.append((m.weight.detach().numpy().T, m.bias.detach().numpy(), None))
        elif isinstance(m, nn.Identity):
            continue
        else:
            w, b, _ = layers[-1]
            layers[-1] = (w, b, _NP_ACTIVATIONS[type(m)])
    return layers


def _numpy_mlp(layers: list[NumpyLayer], x: np.ndarray) -> np.ndarray:
    for w, b, act in layers:
        x = x @ w + b
        if act is not None:
            x = act(x)
    return x


# BLAS picks its kernel by the number of rows, and kernels round differently: the same observation could get log π
# and V that differ in the last bit when 4 envs share the call rather than 8. Computed in blocks of a fixed number
# of rows (the last one zero-padded), a row's result depends on that row alone, for every position in the block
# (tests/test_fast_paths.py checks it on the machine that runs it). With OpenBLAS 0.3.31's Haswell kernels on an AMD
# EPYC (Zen 3, AVX2) blocks of 16 rows were not uniform (rows 8-15 of a 64-wide layer took another kernel), where
# blocks of 8 are; 16 had passed on the machines measured before.
BLOCK_ROWS = 8


def _in_blocks(forward: Callable[[np.ndarray], tuple[np.ndarray, ...]], x: np.ndarray) -> tuple[np.ndarray, ...]:
    """``forward`` (rows → tuple of row-aligned arrays) on ``x`` in blocks of :data:`BLOCK_ROWS` rows."""
    n = x.shape[0]
    padded = np.concatenate([x, np.zeros(((-n) % BLOCK_ROWS, *x.shape[1:]), x.dtype)]) if n % BLOCK_ROWS else x
    parts = [forward(padded[i : i + BLOCK_ROWS]) for i in range(0, padded.shape[0], BLOCK_ROWS)]
    return tuple(np.concatenate(column)[:n] for column in zip(*parts, strict=True))


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    out: np.ndarray = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # np.log's stubs return Any here
    return out


def _sample_categorical(logp: np.ndarray, rng: ActingDraws) -> np.ndarray:
    cdf = np.exp(logp).cumsum(axis=-1)
    u = rng.random((logp.shape[0], 1)) * cdf[:, -1:]
    actions: np.ndarray = np.minimum((u >= cdf).sum(axis=-1), logp.shape[-1] - 1)  # an Any in numpy's stubs
    return actions


class NumpyActing:
    """The acting forward pass (sample a ~ π(·|s), log π(a|s), V(s)) in numpy on views of the policy's CPU
    parameters, sampling with ``rng``."""

    def __init__(self, policy: ActorCritic, rng: ActingDraws) -> None:
        assert self.supports(policy)
        self.rng = rng
        self.space = policy.action_space
        self.actor = _numpy_layers(policy.actor_trunk)
        self.critic = None if policy.critic_trunk is None else _numpy_layers(policy.critic_trunk)
        self.actor_head = _numpy_layers(policy.actor_head)
        self.critic_head = _numpy_layers(policy.critic_head)
        self.log_std = None if policy.log_std is None else policy.log_std.detach().numpy()
        self.use_sde = policy.use_sde
        self.exploration: np.ndarray | None = None  # gSDE's θ_ε [N, L, A], drawn by resample_exploration

    def resample_exploration(self, n: int) -> np.ndarray:
        """gSDE: ``n`` fresh exploration matrices θ_ε ``[n, L, A]``, θ_ε,ij ~ N(0, σ_ij²), one per env, from ``rng``
        (a Ray runner's rows of the run's draws); acting uses them until the next call."""
        assert self.use_sde and self.log_std is not None, "exploration matrices are gSDE's"
        draws = self.rng.standard_normal((n, *self.log_std.shape), dtype=np.float32)
        self.exploration = np.exp(self.log_std) * draws
        return self.exploration

    @staticmethod
    def supports(policy: ActorCritic) -> bool:
        """CPU parameters, a Box observation without an encoder (CNN, Dict, a user module) and tanh/ReLU
        activations (else the torch path is used)."""
        on_cpu = all(p.device.type == "cpu" and p.dtype == torch.float32 for p in policy.parameters())
        acts = all(type(m) in _NP_ACTIVATIONS for m in policy.modules() if isinstance(m, tuple(ACTIVATIONS.values())))
        return on_cpu and acts and not policy.one_hot and policy.encoder is None and policy.core is None

    def _value(self, x: np.ndarray) -> tuple[np.ndarray]:
        return (_numpy_mlp(self.critic_head, _numpy_mlp(self.actor if self.critic is None else self.critic, x)),)

    def _heads(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = _numpy_mlp(self.actor, x)
        value = _numpy_mlp(self.critic_head, h if self.critic is None else _numpy_mlp(self.critic, x))
        return _numpy_mlp(self.actor_head, h), value

    def _sde_heads(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """μ(s), V(s), φ(s) and gSDE's Var(s) + 10⁻⁶ = φ² σ² + 10⁻⁶ (``distributions.gsde_variance``)."""
        assert self.log_std is not None
        h = _numpy_mlp(self.actor, x)
        value = _numpy_mlp(self.critic_head, h if self.critic is None else _numpy_mlp(self.critic, x))
        var = (h * h) @ np.exp(2.0 * self.log_std) + GSDE_VAR_EPS
        return _numpy_mlp(self.actor_head, h), value, h, var

    def _act_sde(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """gSDE: a = μ(s) + φ(s)·θ_ε with this env's θ_ε, scored under N(μ(s), Var(s) + 10⁻⁶)."""
        assert self.exploration is not None and len(self.exploration) == len(x), "resample_exploration first"
        mean, value, h, var = _in_blocks(self._sde_heads, x)
        noise = np.einsum("nl,nla->na", h, self.exploration)
        logp = (-0.5 * noise * noise / var - 0.5 * np.log(var) - 0.5 * np.log(2 * np.pi)).sum(-1)
        return mean + noise, logp.astype(np.float32), value[:, 0].astype(np.float32)

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(s) ``[N]`` for observations ``[N, *obs_shape]``."""
        x = np.asarray(obs, dtype=np.float32).reshape(obs.shape[0], -1)
        return _in_blocks(self._value, x)[0][:, 0].astype(np.float32)

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actions, log π(a|s) ``[N]``, V(s) ``[N]``) for observations ``[N, *obs_shape]``."""
        x = np.asarray(obs, dtype=np.float32).reshape(obs.shape[0], -1)
        if self.use_sde:
            return self._act_sde(x)
        params, value = _in_blocks(self._heads, x)
        value = value[:, 0]
        if isinstance(self.space, spaces.Discrete):
            logp_all = _log_softmax(params)
            actions = _sample_categorical(logp_all, self.rng)
            logp = np.take_along_axis(logp_all, actions[:, None], axis=-1)[:, 0]
        elif isinstance(self.space, spaces.MultiDiscrete):
            parts = np.split(params, np.cumsum(self.space.nvec)[:-1], axis=-1)
            actions = np.empty((x.shape[0], len(parts)), dtype=np.int64)
            logp = np.zeros(x.shape[0], dtype=np.float32)
            for i, part in enumerate(parts):
                lp = _log_softmax(part)
                actions[:, i] = _sample_categorical(lp, self.rng)
                logp += np.take_along_axis(lp, actions[:, i : i + 1], axis=-1)[:, 0]
        else:
            log_std = self.log_std
            assert log_std is not None, "a Box action space has a log-std parameter"
            std = np.exp(log_std)
            noise = self.rng.standard_normal(params.shape, dtype=np.float32)
            actions = params + std * noise
            logp = (-0.5 * noise * noise - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        return actions, logp.astype(np.float32), value.astype(np.float32)
