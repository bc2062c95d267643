"""A Dict observation as one flat row, so that rollouts, Ray runners and checkpoints handle one array per step (no
dict buffers), and its keys back on the learner (:class:`DictLayout`).

Two layouts, chosen from the Dict space:

- **values** (gymnasium's own ``spaces.flatten``: keys in the space's order, each flattened, Discrete one-hot), when
  no key holds uint8 values, or every key does: the row's dtype is the flat space's (float32, or uint8).
- **bytes**, when uint8 keys (images) sit beside keys of other types: each key's bytes side by side in one uint8
  row: uint8 values as they are, Discrete one-hot and MultiBinary as 0/1 bytes, any other Box as float32's 4 bytes.
  gymnasium's flatten would make the whole row float32, so an image would be stored as 4 bytes a pixel (a 128-step
  × 8-env rollout of a 4 × 84 × 84 image: 116 MB instead of 29 MB). Every key comes back exact.

Written here rather than taken from gymnasium because gymnasium has one flat dtype per row; the values layout *is*
gymnasium's flatten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from ..errors import ConfigError

FLOAT_BYTES = 4
SUPPORTED = (spaces.Box, spaces.Discrete, spaces.MultiBinary)  # the key spaces a flat row holds


def select_keys(space: spaces.Dict, keys: tuple[str, ...] | None) -> tuple[spaces.Dict, dict[str, str]]:
    """The Dict of the keys kept (``keys`` in the space's order; None: every key of a supported space) and the
    keys dropped with why (``{key: its space's class name}``; only when ``keys`` is None). A ConfigError names
    unknown keys, or a kept key whose space no encoder takes, with the available ones."""
    usable = [k for k, sub in space.spaces.items() if isinstance(sub, SUPPORTED)]
    if keys is None:
        dropped = {k: type(sub).__name__ for k, sub in space.spaces.items() if k not in usable}
        if not usable:
            raise ConfigError(
                f"no key of the Dict observation {space} has a supported space (Box, Discrete, MultiBinary)"
            )
        return spaces.Dict({k: space.spaces[k] for k in usable}), dropped
    unknown = [k for k in keys if k not in space.spaces]
    if unknown:
        raise ConfigError(f"obs_keys: unknown keys {unknown}; the observation's keys are {list(space.spaces)}")
    unusable = [k for k in keys if k not in usable]
    if unusable:
        raise ConfigError(
            f"obs_keys: keys {unusable} have spaces no encoder takes (supported: Box, Discrete, MultiBinary); "
            f"keep some of {usable}"
        )
    if not keys:
        raise ConfigError(f"obs_keys is empty; keep some of {usable} (or remove obs_keys: every supported key)")
    return spaces.Dict({k: space.spaces[k] for k in space.spaces if k in keys}), {}


@dataclass(frozen=True)
class Part:
    """Where one key lies in the flat row (``start:stop``, in the row's elements), the shape it takes back (a Box:
    its shape; Discrete and MultiBinary: ``(n,)``) and how it is stored: ``uint8`` (a uint8 Box's values),
    ``float32`` (the bytes of its float32 values: bytes layout only) or ``values`` (a one-hot, 0/1 or a Box's
    values in the row's dtype)."""

    key: str
    start: int
    stop: int
    shape: tuple[int, ...]
    stored: str


class DictLayout:
    """How the observations of a Dict ``space`` of Box, Discrete and MultiBinary keys lie in one flat row."""

    def __init__(self, space: spaces.Dict) -> None:
        for key, sub in space.spaces.items():
            if not isinstance(sub, (spaces.Box, spaces.Discrete, spaces.MultiBinary)):
                raise ConfigError(
                    f"Dict observation key '{key}' has space {sub}; supported: Box, Discrete, MultiBinary"
                )
        self.space = space
        uint8 = {k: isinstance(s, spaces.Box) and s.dtype == np.uint8 for k, s in space.spaces.items()}
        self.packed = any(uint8.values()) and spaces.flatten_space(space).dtype != np.uint8
        self.parts: list[Part] = []
        at = 0
        for key, sub in space.spaces.items():
            shape = tuple(sub.shape) if isinstance(sub, spaces.Box) else (int(spaces.flatdim(sub)),)
            box = isinstance(sub, spaces.Box)
            stored = "uint8" if uint8[key] else "float32" if self.packed and box else "values"
            size = int(np.prod(shape)) * (FLOAT_BYTES if stored == "float32" else 1)
            self.parts.append(Part(key, at, at + size, shape, stored))
            at += size
        values_space = spaces.flatten_space(space)  # of a Dict of Box, Discrete and MultiBinary keys: a Box
        assert isinstance(values_space, spaces.Box)
        self.flat_space = spaces.Box(0, 255, (at,), np.uint8) if self.packed else values_space

    def flatten(self, obs: dict[str, Any]) -> np.ndarray:
        """One observation (a dict) → its flat row ``[D]``."""
        if not self.packed:
            flat = spaces.flatten(self.space, obs)
            assert isinstance(flat, np.ndarray)  # a Dict space flattens to an array
            return flat
        row = np.empty(self.flat_space.shape, np.uint8)
        for part in self.parts:
            sub = self.space.spaces[part.key]
            value = obs[part.key]
            if part.stored == "float32":
                row[part.start : part.stop] = np.ascontiguousarray(value, np.float32).reshape(-1).view(np.uint8)
            else:  # uint8 values, a one-hot (gymnasium's, of x - start), MultiBinary's 0/1
                row[part.start : part.stop] = np.asarray(spaces.flatten(sub, value)).reshape(-1)
        return row

    def flatten_batch(self, obs: dict[str, Any]) -> np.ndarray:
        """One Dict observation → its row ``[D]``, or a batch of them (each key ``[B, *shape]``) → ``[B, D]``."""
        first, sub = next(iter(self.space.spaces.items()))
        if np.ndim(obs[first]) == len(sub.shape or ()):
            return self.flatten(obs)
        return np.stack([self.flatten({k: v[i] for k, v in obs.items()}) for i in range(len(obs[first]))])

    def unflatten(self, rows: Tensor) -> dict[str, Tensor]:
        """Flat rows ``[B, D]`` → each key's values ``[B, *shape]``: uint8 keys as uint8 while the rows are (an
        image is scaled by the CNN), everything else as float32."""
        if self.packed and rows.dtype != torch.uint8:  # bytes that went through a float tensor come back exact
            rows = rows.to(torch.uint8)
        out = {}
        for part in self.parts:
            chunk = rows[:, part.start : part.stop]
            if part.stored == "float32":
                chunk = chunk.contiguous().view(torch.float32)
            elif not (part.stored == "uint8" and chunk.dtype == torch.uint8):
                chunk = chunk.float()
            out[part.key] = chunk.reshape(rows.shape[0], *part.shape)
        return out
