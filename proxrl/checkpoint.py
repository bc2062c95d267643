"""Checkpoint stores: atomic writes, a rolling window of the last K, versioned safe loading.

Two stores, chosen by the trainer:
- a *file* (``model.pt``, ``checkpoints/ckpt_<step>.pt``): :func:`atomic_save` (temp file, fsync, rename),
  :func:`save_periodic`, :func:`list_checkpoints`;
- a *folder* (``model/``, ``checkpoints/step_<N>/``) for models written with ``save_pretrained``, with the
  trainer's state beside them in ``trainer_state.pt``: :func:`save_folder` (temp folder, rename),
  :func:`save_periodic_folder`, :func:`find_folder`.
:func:`latest` finds a run directory's newest checkpoint in either store and :func:`state_file` the state file of
any path. A checkpoint is a dict of tensors, numbers, strings, lists and dicts saved with ``torch.save`` and read
by :func:`load` with ``torch.load(weights_only=True)``, which refuses to unpickle arbitrary objects: loading a
file never runs code. An older format version is migrated by the trainer's own ``migrations``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

# One rule for every checkpoint, file or folder: a format version. A trainer lists in its ``migrations`` class
# attribute the versions whose states it must change (version v → a function from a v state to a v + 1 one); a
# version it does not list reads unchanged. Versions before OLDEST_FORMAT are refused with a clear error.
#   2: the optimiser state is over one flat parameter tensor (proxrl.optim.FlatParameters)
#   3: configs hold only the keys their trainer uses; trainers' states gained keys (each trainer's migrations
#      say which)
#   4: env-stepping trainers keep one Adam per named network: ``optimizer`` is {name: Adam state} (single-agent
#      trainers: {"policy": …})
FORMAT_VERSION = 4
OLDEST_FORMAT = 2
_NAME = re.compile(r"^ckpt_(\d{12})\.pt$")
TRAINER_STATE = "trainer_state.pt"  # a folder checkpoint's state, beside its save_pretrained model

Migration = Callable[[dict[str, Any]], dict[str, Any]]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or belongs to another method or format."""


def drop_config_keys(*keys: str) -> Migration:
    """A migration that removes ``keys`` from a state's stored config (keys a trainer accepted and ignored)."""

    def migrate(state: dict[str, Any]) -> dict[str, Any]:
        if isinstance(state.get("config"), str):
            import yaml

            values = yaml.safe_load(state["config"])
            if isinstance(values, dict):
                state["config"] = yaml.safe_dump({k: v for k, v in values.items() if k not in keys}, sort_keys=False)
        return state

    return migrate


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


def save_folder(folder: str | Path, write: Callable[[Path], None]) -> Path:
    """Write a folder checkpoint: ``write(tmp)`` fills a temporary sibling folder, which then replaces ``folder``
    by renames, so a crash never leaves a half-written folder under the final name."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(folder)
    return folder


def save_periodic_folder(directory: str | Path, step: int, keep: int, write: Callable[[Path], None]) -> Path:
    """Save ``checkpoints/step_<step>/`` with :func:`save_folder`, then delete all but the newest ``keep``."""
    directory = Path(directory)
    path = save_folder(directory / f"step_{step:09d}", write)
    for old in sorted(directory.glob("step_*"))[:-keep]:
        hidden = old.with_name(f".{old.name}.del")
        old.rename(hidden)  # out of sight in one atomic step: a kill mid-delete leaves no half checkpoint
        shutil.rmtree(hidden, ignore_errors=True)
    for leftover in directory.glob(".step_*.del"):  # left by a process killed while pruning
        shutil.rmtree(leftover, ignore_errors=True)
    return path


def find_folder(path: str | Path) -> Path:
    """The folder checkpoint of ``path``: itself, the folder of a ``trainer_state.pt``, or a run directory's
    newest checkpoint folder."""
    path = Path(path)
    if path.is_file():
        return path.parent
    if (path / TRAINER_STATE).is_file():
        return path
    return latest(path).parent


def state_file(path: str | Path) -> Path:
    """The file holding the state of the checkpoint at ``path``: a file itself, a folder checkpoint's
    ``trainer_state.pt``, or a run directory's newest checkpoint (:func:`latest`)."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / TRAINER_STATE).is_file():
        return path / TRAINER_STATE
    return latest(path)


def load(
    path: str | Path, algo: str | None = None, migrations: Mapping[int, Migration] | None = None
) -> dict[str, Any]:
    """Read a checkpoint safely; refuse a missing file, a pickle that needs code, another method's file or a
    format too old or too new; bring an older format up to date with ``migrations`` (the trainer's own)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError or RuntimeError variants
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely: {str(e).splitlines()[0]}") from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path} is not a proxrl checkpoint")
    version = state["format_version"]
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version}; this proxrl reads up to {FORMAT_VERSION}: upgrade proxrl"
        )
    if version < OLDEST_FORMAT:
        raise CheckpointError(
            f"{path} has format version {version}, written by an older proxrl; this one reads "
            f"formats {OLDEST_FORMAT} to {FORMAT_VERSION}: retrain, or load it with the proxrl "
            "that wrote it"
        )
    if algo is not None and state.get("algo") != algo:  # before migrating: a migration sees its own method's states
        raise CheckpointError(f"{path} is a '{state.get('algo')}' checkpoint, not '{algo}'")
    for v in range(version, FORMAT_VERSION):
        if migrations and v in migrations:
            state = migrations[v](state)
        state["format_version"] = v + 1
    return state


def latest(run_dir: str | Path) -> Path:
    """The newest checkpoint of a run directory, file or folder store: its final save (``model.pt``, or
    ``model/trainer_state.pt``) if the run finished after its last periodic one."""
    run_dir = Path(run_dir)
    candidates = list_checkpoints(run_dir / "checkpoints")
    candidates += [p for p in (run_dir / "checkpoints").glob(f"step_*/{TRAINER_STATE}") if p.is_file()]
    for final in (run_dir / "model.pt", run_dir / "model" / TRAINER_STATE, run_dir / TRAINER_STATE):
        if final.is_file():
            candidates.append(final)
    if not candidates:
        raise CheckpointError(
            f"no checkpoint in {run_dir} (looked for model.pt, checkpoints/ckpt_*.pt and folders "
            f"holding {TRAINER_STATE}); is this a proxrl run directory?"
        )
    return max(candidates, key=lambda p: p.stat().st_mtime_ns)
