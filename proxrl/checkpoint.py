"""Checkpoints: atomic writes (temp file, fsync, rename), a rolling window of the last K, and safe loading.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts saved with ``torch.save`` and read with
``torch.load(weights_only=True)``, which refuses to unpickle arbitrary objects: loading a file never runs code.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

# One rule for every checkpoint, file or save_pretrained folder: a format version; an older version is migrated
# where a migration exists (MIGRATIONS) and refused with a clear error where none does.
#   2: the optimiser state is over one flat parameter tensor (proxrl.optim.FlatParameters)
#   3: GRPO's trainer_state names its reference model and keeps the warm-up and sampled accuracies; configs hold
#      only the keys their trainer uses (GRPO: no num_envs, vectorization, stop_return; multi-agent: no
#      vectorization)
FORMAT_VERSION = 3
_NAME = re.compile(r"^ckpt_(\d{12})\.pt$")
TRAINER_STATE = "trainer_state.pt"  # beside a save_pretrained model folder


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or belongs to another method or format."""


_UNUSED_KEYS_BEFORE_3 = {"grpo": ("num_envs", "vectorization", "stop_return"), "multiagent_ppo": ("vectorization",)}


def _migrate_2_to_3(state: dict[str, Any]) -> dict[str, Any]:
    """Version 2 → 3: a GRPO state gains the keys version 3 added, each with the meaning its absence had (no
    reference named: the loaded policy's copy is the reference; accuracies not recorded); the stored config loses
    the keys its trainer never used (they were accepted and ignored)."""
    if state.get("algo") == "grpo":
        for key in ("reference", "warmup_accuracy", "last_sampled_accuracy", "warmup_sampled_accuracy"):
            state.setdefault(key, None)
        state.setdefault("iteration", state["global_step"])  # one update per GRPO step
        state.setdefault("recent_lengths", [])
    unused = _UNUSED_KEYS_BEFORE_3.get(str(state.get("algo")), ())
    if unused and isinstance(state.get("config"), str):
        import yaml

        values = yaml.safe_load(state["config"])
        if isinstance(values, dict):
            state["config"] = yaml.safe_dump({k: v for k, v in values.items() if k not in unused}, sort_keys=False)
    return state


# version v → a function that turns a version-v state into a version v + 1 one
MIGRATIONS = {2: _migrate_2_to_3}


def atomic_save(obj: dict[str, Any], path: str | Path) -> Path:
    """Write ``obj`` to ``path`` so that a crash at any moment leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def save_periodic(obj: dict[str, Any], directory: str | Path, step: int, keep: int) -> Path:
    """Save ``checkpoints/ckpt_<step>.pt`` atomically, then delete all but the newest ``keep``."""
    directory = Path(directory)
    path = atomic_save(obj, directory / f"ckpt_{step:012d}.pt")
    for stale in directory.glob(".ckpt_*.tmp"):  # left by a process killed mid-write (never a checkpoint)
        stale.unlink(missing_ok=True)
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Periodic checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def load(path: str | Path, algo: str | None = None) -> dict[str, Any]:
    """Read a checkpoint safely; refuse a missing file, a pickle that needs code, or another method's file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError or RuntimeError variants
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely: {str(e).splitlines()[0]}") from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path} is not a proxrl checkpoint")
    if state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {state['format_version']}; this proxrl reads up to "
                              f"{FORMAT_VERSION}: upgrade proxrl")
    while state["format_version"] < FORMAT_VERSION:
        version = state["format_version"]
        if version not in MIGRATIONS:
            raise CheckpointError(f"{path} has format version {version}, written by an older proxrl; this one reads "
                                  f"formats {min(MIGRATIONS)} to {FORMAT_VERSION}: retrain, or load it with the "
                                  "proxrl that wrote it")
        state = MIGRATIONS[version](state)
        state["format_version"] = version + 1
    if algo is not None and state.get("algo") != algo:
        raise CheckpointError(f"{path} is a '{state.get('algo')}' checkpoint, not '{algo}'")
    return state


def latest(run_dir: str | Path) -> Path:
    """The newest checkpoint of a run directory: ``model.pt`` if the run finished after its last periodic one."""
    run_dir = Path(run_dir)
    candidates = list_checkpoints(run_dir / "checkpoints")
    # language-model runs (GRPO) save folders: checkpoints/step_*/ and model/, each with its trainer_state.pt
    candidates += [p for p in (run_dir / "checkpoints").glob(f"step_*/{TRAINER_STATE}") if p.is_file()]
    for final in (run_dir / "model.pt", run_dir / "model" / TRAINER_STATE, run_dir / TRAINER_STATE):
        if final.is_file():
            candidates.append(final)
    if not candidates:
        raise CheckpointError(f"no checkpoint in {run_dir} (looked for model.pt, checkpoints/ckpt_*.pt and GRPO's "
                              f"{TRAINER_STATE} folders); is this a proxrl run directory?")
    return max(candidates, key=lambda p: p.stat().st_mtime_ns)
