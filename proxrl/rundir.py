"""Who may write a run directory: a new run never lands in a folder that holds another run (unless told to
replace it), and one process at a time writes a run (a lock file); and where a run goes when none is given.

Written by hand: the lock is a dozen lines over ``fcntl.flock``, which the kernel releases when the process dies,
so a killed run never leaves a stale lock (the ``filelock`` package does the same and would be one more
dependency).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError

# What a run writes; a folder holding any of these holds a run
RUN_FILES = ("model.pt", "model", "checkpoints", "progress.csv", "config.yaml", "tb", "init_model")
LOCK_FILE = ".proxrl.lock"

_held: dict[Path, tuple[int, int]] = {}  # resolved run dir → (lock fd, holders in this process)


class RunDirectoryError(ConfigError):
    """A run directory that holds another run, or that another process is writing."""


def default_run_dir(algo: str, env: str, seed: int, root: str | Path = "runs") -> Path:
    """``runs/<algo>_<env>_s<seed>_<timestamp>``: where a run goes when no run directory is given."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{algo}_{env.replace(':', '_').replace('/', '_')}_s{seed}_{stamp}"


def existing_run(run_dir: Path) -> list[str]:
    """The run files in ``run_dir`` (empty when it holds no run)."""
    return [name for name in RUN_FILES if (run_dir / name).exists()]


def refuse_or_clear(run_dir: Path, overwrite: bool) -> None:
    """Before a *new* run writes ``run_dir``: refuse a folder that holds a run, or with ``overwrite`` move that
    run's files out of sight (renamed to hidden names first, so a kill mid-way leaves no visible half run) and
    delete them."""
    found = existing_run(run_dir)
    if not found:
        return
    if not overwrite:
        raise RunDirectoryError(
            f"{run_dir} already holds a run ({', '.join(found)}): continue it with `proxrl train --resume "
            f"{run_dir}`, choose another --run-dir, or pass --overwrite to replace it"
        )
    for name in found:
        hidden = run_dir / f".{name}.replaced"
        _remove(hidden)
        (run_dir / name).rename(hidden)
    for name in found:
        _remove(run_dir / f".{name}.replaced")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_leftovers(run_dir: Path) -> None:
    """Delete what a killed process left half done: hidden ``.*.replaced``, pruned ``.step_*.del`` folders,
    unfinished ``.*.tmp`` writes."""
    for pattern in (".*.replaced", "checkpoints/.step_*.del", "checkpoints/.*.tmp", ".*.tmp", ".*.old"):
        for leftover in run_dir.glob(pattern):
            _remove(leftover)


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block: another process that tries gets a :class:`RunDirectoryError` naming
    the holder's pid. Re-entrant within one process; a no-op where ``fcntl`` does not exist (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    if key in _held:
        fd, count = _held[key]
        _held[key] = (fd, count + 1)
    else:
        fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirectoryError(
                f"{run_dir} is in use by another proxrl process (pid {holder}): wait for it to finish, stop it, "
                "or choose another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        _held[key] = (fd, 1)
    try:
        yield
    finally:
        fd, count = _held[key]
        if count > 1:
            _held[key] = (fd, count - 1)
        else:
            del _held[key]
            os.close(fd)  # closing releases the flock
