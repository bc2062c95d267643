"""Snapshot and restore the state of environments for an exact resume, without pickling.

A checkpoint never holds pickled objects (it is read with ``torch.load(weights_only=True)``), so an env's state is
captured as the plain values reachable from its attributes — numbers, strings, numpy arrays (as tensors), numpy
random Generators (as their bit-generator state), and lists, tuples, dicts and deques of these — along its wrapper
chain (``.env``) and, for a synchronous vector env or a collector, its sub-envs (``.envs``). Attributes of other
types are skipped; those that are state (a MuJoCo simulation's data, a board object, async worker processes) are
named in the snapshot's ``unsaved`` list, and such an env resumes from a clean seeded reset instead (the trainer
says so once) — never from a mix of restored counters and a stale observation. gymnasium's classic-control
envs, its native vector CartPole, the sync vector env and its wrappers, and the PettingZoo envs of the tests are
restored bit for bit (``tests/test_resume.py``).
"""

from __future__ import annotations

import collections
import enum
import json
import warnings
from typing import Any

import gymnasium
import numpy as np
import torch

from ..errors import ResumeWarning

_SKIP = {"env", "envs", "metadata", "spec"}
_SKIP_PREFIXES = ("_cached", "closed")


class _Unsupported(Exception):
    pass


def _encode(value: Any) -> Any:
    if isinstance(value, np.generic):  # first: np.float64 is also a python float
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf" or value.dtype in (np.uint16, np.uint32, np.uint64):
            raise _Unsupported
        return {"__array__": torch.from_numpy(np.ascontiguousarray(value).copy()), "dtype": value.dtype.str}
    if isinstance(value, np.random.Generator):
        return {"__generator__": json.dumps(value.bit_generator.state)}
    if isinstance(value, collections.deque):
        return {"__deque__": [_encode(v) for v in value], "maxlen": value.maxlen}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v) for k, v in value.items()}}
    raise _Unsupported


def _decode(saved: Any, current: Any) -> Any:
    """The value to set for ``saved``; arrays are copied into ``current`` in place where shapes allow (other
    objects may alias them), Generators get their state set on the live object."""
    if isinstance(saved, dict):
        if "__array__" in saved:
            array = saved["__array__"].numpy().astype(np.dtype(saved["dtype"]), copy=True)
            if (
                isinstance(current, np.ndarray)
                and current.shape == array.shape
                and current.dtype == array.dtype
                and current.flags.writeable
            ):
                np.copyto(current, array)
                return current
            return array
        if "__generator__" in saved:
            gen = current if isinstance(current, np.random.Generator) else np.random.default_rng()
            gen.bit_generator.state = json.loads(saved["__generator__"])
            return gen
        if "__deque__" in saved:
            return collections.deque((_decode(v, None) for v in saved["__deque__"]), maxlen=saved["maxlen"])
        if "__tuple__" in saved:
            return tuple(_decode(v, None) for v in saved["__tuple__"])
        if "__dict__" in saved:
            old = current if isinstance(current, dict) else {}
            return {k: _decode(v, old.get(k)) for k, v in saved["__dict__"].items()}
    if isinstance(saved, list):
        items = current if isinstance(current, list) and len(current) == len(saved) else [None] * len(saved)
        return [_decode(v, c) for v, c in zip(saved, items, strict=True)]
    return saved


def _holds_no_env_state(value: Any) -> bool:
    """Attributes that are not the env's state, or are saved elsewhere: spaces and specs (fixed by construction),
    callables and modules, renderers and rendering handles, proxrl's own objects and torch modules and devices
    (the policy, buffers and counters live in the checkpoint), gymnasium's running statistics (saved with the
    normalisers)."""
    kind = type(value)
    if (
        isinstance(
            value,
            (
                gymnasium.spaces.Space,
                gymnasium.envs.registration.EnvSpec,
                torch.nn.Module,
                torch.device,
                type,
                enum.Enum,
            ),
        )
        or callable(value)
        or kind.__name__ == "module"
    ):
        return True
    if isinstance(value, (list, tuple)):
        return all(_holds_no_env_state(v) for v in value)
    if isinstance(value, dict):
        return all(_holds_no_env_state(v) for v in value.values())
    inner = type(getattr(value, "env", None))
    if inner is gymnasium.Env or inner.__name__ == "_IdentityEnv":  # a vector wrapper's single-env transform
        return True
    module = kind.__module__ or ""
    return (
        "render" in kind.__name__.lower()
        or module.startswith(("proxrl.", "pygame", "logging"))
        or kind.__name__ == "RunningMeanStd"
    )


def _attributes(obj: Any, unsaved: list[str]) -> dict[str, Any]:
    out = {}
    for name, value in vars(obj).items():
        if name in _SKIP or name.startswith(_SKIP_PREFIXES):
            continue
        try:
            out[name] = _encode(value)
        except _Unsupported:
            if not _holds_no_env_state(value):
                unsaved.append(f"{type(obj).__name__}.{name} ({type(value).__name__})")
    return out


def _chain(obj: Any) -> list[Any]:
    layers = [obj]
    while hasattr(layers[-1], "env") and layers[-1].env is not layers[-1] and len(layers) < 64:
        layers.append(layers[-1].env)
    return layers


def snapshot(obj: Any) -> dict[str, Any]:
    """The plain-value state of ``obj``'s wrapper chain and, where the innermost layer has ``.envs`` (a sync vector
    env, a multi-agent collector), of each sub-env's chain; checkpoint-safe (tensors, numbers, strings, lists,
    dicts). ``unsaved`` names the state that could not be captured (a simulator's data, worker processes): with
    any, a resume cannot be exact and :func:`restore` must not be used."""
    layers = _chain(obj)
    unsaved: list[str] = []
    subenvs = getattr(layers[-1], "envs", None)
    if not isinstance(subenvs, list) and hasattr(layers[-1], "processes"):  # an async vector env's workers
        unsaved.append(f"{type(layers[-1]).__name__}: its envs live in worker processes")
    state: dict[str, Any] = {
        "layers": [_attributes(layer, unsaved) for layer in layers],
        "subenvs": [[_attributes(layer, unsaved) for layer in _chain(e)] for e in subenvs]
        if isinstance(subenvs, list)
        else None,
    }
    state["unsaved"] = list(dict.fromkeys(unsaved))
    return state


def restore(obj: Any, state: dict[str, Any]) -> None:
    """Set what :func:`snapshot` captured back onto ``obj`` (built the same way, e.g. by the same config); a
    ValueError if the snapshot is partial (``unsaved``) or of another env stack."""
    if state.get("unsaved"):
        raise ValueError("the envs' state was saved only in part: " + "; ".join(state["unsaved"]))
    layers = _chain(obj)
    if len(layers) != len(state["layers"]):
        raise ValueError(f"the saved env has {len(state['layers'])} wrapper layers, this one {len(layers)}")
    for layer, attrs in zip(layers, state["layers"], strict=True):
        _set(layer, attrs)
    if state["subenvs"] is not None:
        subenvs = layers[-1].envs
        if len(subenvs) != len(state["subenvs"]):
            raise ValueError(f"the saved vector env has {len(state['subenvs'])} envs, this one {len(subenvs)}")
        for env, saved in zip(subenvs, state["subenvs"], strict=True):
            for layer, attrs in zip(_chain(env), saved, strict=True):
                _set(layer, attrs)


def _set(layer: Any, attrs: dict[str, Any]) -> None:
    for name, saved in attrs.items():
        setattr(layer, name, _decode(saved, getattr(layer, name, None)))


def restore_or_reset(obj: Any, state: dict[str, Any] | None, what: str, seed: int) -> bool:
    """Restore ``obj`` from ``state`` (True), or leave it at the clean seeded reset it was just given and warn once
    (:class:`~proxrl.errors.ResumeWarning`) why it is not exact (False). ``None``: nothing saved, nothing said."""
    if state is None:
        return False
    try:
        restore(obj, state)
        return True
    except ValueError as e:
        warnings.warn(
            f"resume: {what} cannot be put back exactly ({e}); they start from a clean reset with seed {seed}",
            ResumeWarning,
            stacklevel=3,
        )
        return False
