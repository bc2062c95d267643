"""Checkpoint stores: atomic writes, a rolling window of the last K, versioned safe loading.

Two stores, chosen by the trainer:
- a *file* (``model.pt``, ``checkpoints/ckpt_<step>.pt``): :func:`atomic_save` (temp file, fsync, rename),
  :func:`save_periodic`, :func:`list_checkpoints`;
- a *folder* (``model/``, ``checkpoints/step_<N>/``) for models written with ``save_pretrained``, with the
  trainer's state beside them in ``trainer_state.pt``: :func:`save_folder` (temp folder, rename),
  :func:`save_periodic_folder`.
:func:`load_newest` reads a run directory's newest valid checkpoint in either store (skipping damaged ones, and
saying so) and :func:`state_file` names the state file of any path. A checkpoint is a dict of tensors, numbers,
strings, lists and dicts saved with ``torch.save`` and read by :func:`load` with ``torch.load(weights_only=True)``,
which refuses to unpickle arbitrary objects: loading a file never runs code. An older format version is migrated
by the trainer's own ``migrations``.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

# One rule for every checkpoint, file or folder: a format version. A trainer lists in its ``migrations`` class
# attribute the versions whose states it must change (version v → a function from a v state to a v + 1 one); a
# version it does not list reads unchanged. Versions before OLDEST_FORMAT are refused with a clear error.
#   2: the optimiser state is over one flat parameter tensor (proxrl.optim.FlatParameters)
#   3: configs hold only the keys their trainer uses; trainers' states gained keys (each trainer's migrations
#      say which)
#   4: env-stepping trainers keep one Adam per named network: ``optimizer`` is {name: Adam state} (single-agent
#      trainers: {"policy": …})
#   5: GRPO's ``aggregation`` is ``loss_type``, with TRL's names (lm.migrations)
FORMAT_VERSION = 5
OLDEST_FORMAT = 2
_NAME = re.compile(r"^ckpt_(\d{12})\.pt$")
TRAINER_STATE = "trainer_state.pt"  # a folder checkpoint's state, beside its save_pretrained model

Migration = Callable[[dict[str, Any]], dict[str, Any]]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or belongs to another method or format."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint file that is empty, truncated, incomplete or not a proxrl checkpoint at all."""

    def __init__(self, file: Path, problem: str) -> None:
        super().__init__(f"checkpoint {file} is {problem}")
        self.file, self.problem = file, problem


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


def rename_config_key(old: str, new: str, values: Mapping[Any, Any] | None = None) -> Migration:
    """A migration that renames config key ``old`` to ``new`` in a state's stored config, mapping its value through
    ``values`` (unchanged where a value is not listed)."""

    def migrate(state: dict[str, Any]) -> dict[str, Any]:
        if isinstance(state.get("config"), str):
            import yaml

            config = yaml.safe_load(state["config"])
            if isinstance(config, dict) and old in config:
                value = config.pop(old)
                config[new] = (values or {}).get(value, value)
                state["config"] = yaml.safe_dump(config, sort_keys=False)
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
    """Read a checkpoint safely; refuse a missing or damaged file, a pickle that needs code, another method's file
    or a format too old or too new; bring an older format up to date with ``migrations`` (the trainer's own)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    problem = _damage(path)
    if problem:
        raise DamagedCheckpointError(path, problem)
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        needs = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if needs is None:  # the unpickler met bytes that are no pickle instruction: the file is damaged
            raise DamagedCheckpointError(path, "damaged (not a torch.save file, or overwritten)") from None
        raise DamagedCheckpointError(
            path,
            f"not a proxrl checkpoint: it holds Python objects ({needs.group(1)}) that only an unrestricted pickle "
            "load would rebuild, which proxrl refuses (it could run code)",
        ) from None
    except Exception as e:  # noqa: BLE001 - torch raises EOFError, RuntimeError, KeyError, OSError on a bad file
        raise DamagedCheckpointError(path, f"damaged (truncated or overwritten: {_first_line(e)})") from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise DamagedCheckpointError(path, "not a proxrl checkpoint (no format_version)")
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


def _first_line(error: BaseException) -> str:
    text = str(error).strip().split(". ")[0]
    return text.splitlines()[0][:160] if text else type(error).__name__


def _damage(path: Path) -> str | None:
    """What is visibly wrong with a checkpoint file before reading it, or None."""
    if path.stat().st_size == 0:
        return "damaged: an empty file (0 bytes)"
    if path.name == TRAINER_STATE:  # a folder checkpoint: its model weights must be there too
        weights = [p for p in path.parent.iterdir() if p.suffix in (".safetensors", ".bin")]
        if not weights:
            return f"incomplete: {path.parent} holds no model weights (*.safetensors or *.bin)"
        empty = [p.name for p in weights if p.stat().st_size == 0]
        if empty:
            return f"damaged: {', '.join(empty)} in {path.parent} is empty"
    return None


class Found(NamedTuple):
    """A checkpoint :func:`load_newest` read: its state file and the state."""

    path: Path
    state: dict[str, Any]


class CheckpointFallbackWarning(UserWarning):
    """Loading a run directory skipped a damaged checkpoint, or found no final save."""


def load_newest(path: str | Path, algo: str | None = None, migrations: Mapping[int, Migration] | None = None) -> Found:
    """Read the checkpoint at ``path``: a file or a folder checkpoint as it is, or a run directory's newest *valid*
    checkpoint. Damaged newer ones are skipped, each with a note naming the file and what is wrong with it, and
    so is a missing final save; with none valid, one error lists every file and its problem. Notes are also
    issued as :class:`CheckpointFallbackWarning` (the CLI prints them as one line each)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist (neither a run directory nor a checkpoint)")
    if path.is_file() or (path / TRAINER_STATE).is_file():
        file = state_file(path)
        return Found(file, load(file, algo, migrations))
    candidates = sorted(_candidates(path), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    if not candidates:
        raise _no_checkpoint(path)
    problems: list[str] = []
    for file in candidates:
        try:
            state = load(file, algo, migrations)
        except DamagedCheckpointError as e:  # another method's or format's file is no damage: that error stands
            problems.append(f"{_shown(file, path)}: {e.problem}")
            continue
        notes = [f"skipped {problem}" for problem in problems]
        if _is_periodic(file) and not any(f.is_file() for f in _finals(path)):
            notes.append(f"{path} has no final save (interrupted, or deleted)")
        if notes:
            notes.append(f"using {_shown(file, path)} (step {state.get('global_step', '?'):,})")
            for note in notes:
                warnings.warn(note, CheckpointFallbackWarning, stacklevel=2)
        return Found(file, state)
    raise CheckpointError(f"no valid checkpoint in {path}: " + "; ".join(problems))


def _no_checkpoint(run_dir: Path) -> CheckpointError:
    if (run_dir / "config.yaml").is_file():  # a run that was killed before its first checkpoint
        return CheckpointError(
            f"{run_dir} holds a run that stopped before its first checkpoint (one is written every "
            "checkpoint_every updates, and on Ctrl-C): nothing to resume; start it again with "
            f"`proxrl train --config {run_dir}/config.yaml --run-dir {run_dir} --overwrite`"
        )
    return CheckpointError(
        f"no checkpoint in {run_dir} (looked for model.pt, checkpoints/ckpt_*.pt and folders "
        f"holding {TRAINER_STATE}); is this a proxrl run directory?"
    )


def _shown(file: Path, run_dir: Path) -> str:
    if file.name == TRAINER_STATE:  # a folder checkpoint is named by its folder
        file = file.parent
    try:
        return str(file.relative_to(run_dir))
    except ValueError:
        return str(file)


def _finals(run_dir: Path) -> list[Path]:
    return [run_dir / "model.pt", run_dir / "model" / TRAINER_STATE, run_dir / TRAINER_STATE]


def _is_periodic(file: Path) -> bool:
    return file.parent.name == "checkpoints" or file.parent.parent.name == "checkpoints"


def _candidates(run_dir: Path) -> list[Path]:
    candidates = list_checkpoints(run_dir / "checkpoints")
    candidates += [p for p in (run_dir / "checkpoints").glob(f"step_*/{TRAINER_STATE}") if p.is_file()]
    return candidates + [final for final in _finals(run_dir) if final.is_file()]


def latest(run_dir: str | Path) -> Path:
    """The newest checkpoint file of a run directory, file or folder store, without reading it (its final save,
    ``model.pt`` or ``model/trainer_state.pt``, if the run finished after its last periodic one);
    :func:`load_newest` is the reader that skips damaged files."""
    run_dir = Path(run_dir)
    candidates = _candidates(run_dir)
    if not candidates:
        raise _no_checkpoint(run_dir)
    return max(candidates, key=lambda p: p.stat().st_mtime_ns)
