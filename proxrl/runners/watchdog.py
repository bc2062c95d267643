"""The watchdog of a local Ray cluster that the learner started: the cluster ends with the learner, however the
learner ends (issue 35: a learner killed with SIGKILL left ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent``
running; Ray's own fate sharing reaches the GCS and the raylet, which it starts, but not what the raylet starts).

The learner starts it right after ``ray.init`` with the processes ``ray.init`` started (the cluster's roots: GCS,
raylet, log monitor …) as ``python -I watchdog.py LEARNER_PID LEARNER_START PID:START …``, in a session of its own (a
terminal's Ctrl-C does not reach it), with a pipe on its stdin, and waits for its first look at the cluster. It
polls every :data:`POLL_S`: while the learner lives it keeps the cluster's process tree up to date (the roots and
all their descendants, each known by pid and start time, so a reused pid is never taken for one of them); once the
learner is gone (or closes the pipe, after ``ray.shutdown``), it SIGKILLs every one of them still running and exits.
Linux only (it reads ``/proc``); elsewhere no watchdog is started.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

POLL_S = 0.2  # how often the learner's liveness and the cluster's tree are looked at
READY_S = 10.0  # how long the learner waits for the watchdog to have the cluster's first tree
REAP_S = 3.0  # how long the watchdog waits for the killed processes to be gone


def process_table() -> dict[int, tuple[int, int]]:
    """Every live (not zombie) process as ``{pid: (parent pid, start time in clock ticks)}``, from ``/proc``."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                text = Path(entry.path, "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            fields = text[text.rindex(")") + 2 :].split()  # after "pid (name) ": state, ppid, …, starttime
            if fields[0] not in ("Z", "X"):
                table[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return table


def children(pid: int) -> dict[int, int]:
    """The live children of ``pid`` as ``{pid: start time}``."""
    return {child: start for child, (parent, start) in process_table().items() if parent == pid}


def tree(known: dict[int, int], table: dict[int, tuple[int, int]]) -> dict[int, int]:
    """The processes of ``known`` (``{pid: start time}``) still running as themselves, and all their descendants."""
    found = {pid: start for pid, start in known.items() if pid in table and table[pid][1] == start}
    grew = True
    while grew:
        more = {pid: start for pid, (parent, start) in table.items() if parent in found and pid not in found}
        found.update(more)
        grew = bool(more)
    return found


def reap(known: dict[int, int]) -> dict[int, int]:
    """SIGKILL every process of ``known`` still running (and their descendants), until none is left or
    :data:`REAP_S` has passed; returns those still running then."""
    deadline = time.monotonic() + REAP_S
    alive = tree(known, process_table())
    while alive and time.monotonic() < deadline:
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)
        alive = tree(alive, process_table())
    return alive


def _stdin_closed(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the learner's pipe; True once it is closed (EOF)."""
    ready, _, _ = select.select([sys.stdin.buffer], [], [], timeout)
    return bool(ready) and not os.read(sys.stdin.fileno(), 4096)


def watch(learner: int, learner_start: int, roots: dict[int, int]) -> None:
    """Keep the tree of ``roots`` up to date while ``learner`` (pid, start time) lives and its pipe is open; then
    kill what is left of it."""
    known, ready = dict(roots), False
    while True:
        table = process_table()
        if table.get(learner, (0, None))[1] != learner_start:
            break
        known = tree(known, table)
        if not ready:  # the learner goes on once the cluster's first tree is known (the agents are in it)
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            ready = True
        if _stdin_closed(POLL_S):
            break
    reap(known)


def guard(start_cluster: Callable[[], Any]) -> subprocess.Popen[bytes] | None:
    """Call ``start_cluster`` (``ray.init`` of a local cluster) and start the watchdog of the processes it started
    (None off Linux, where the cluster is started without one)."""
    if not Path("/proc/self/stat").exists():
        start_cluster()
        return None
    before = children(os.getpid())
    start_cluster()
    return start({pid: t for pid, t in children(os.getpid()).items() if pid not in before})


def start(roots: dict[int, int]) -> subprocess.Popen[bytes]:
    """Start the watchdog of this process's cluster ``roots`` (``{pid: start time}``)."""
    me = os.getpid()
    # this file as a script in isolated mode: the standard library only, started in milliseconds (importing the
    # package would take seconds, during which a killed learner's cluster would go unwatched)
    args = [sys.executable, "-I", os.path.abspath(__file__), str(me), str(process_table()[me][1])]
    args += [f"{pid}:{start}" for pid, start in roots.items()]
    watchdog = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in the terminal's process group: it outlives a Ctrl-C'd learner
    )
    assert watchdog.stdout is not None
    select.select([watchdog.stdout], [], [], READY_S)  # its "ready" line (on a loaded machine it may come later)
    return watchdog


def end_autoscaler_monitor() -> None:
    """SIGKILL the autoscaler monitor that ``ray.init`` started as this process's child, just before
    ``ray.shutdown``: shutdown sends it SIGTERM and then waits a whole second for it (it does not exit at once),
    the largest part of a local cluster's shut-down (``benchmarks/ray_startup.py``); a one-node cluster has nothing
    for it to scale. Linux only (elsewhere shutdown waits)."""
    if not Path("/proc/self/stat").exists():
        return
    for pid in children(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"/autoscaler/_private/monitor.py") for part in command):
            os.kill(pid, signal.SIGKILL)


def stop(watchdog: subprocess.Popen[bytes] | None, timeout: float = REAP_S + 2.0) -> None:
    """Close the watchdog's pipe (after ``ray.shutdown``): it kills what is left of the cluster and exits."""
    if watchdog is None:
        return
    assert watchdog.stdin is not None
    watchdog.stdin.close()
    try:
        watchdog.wait(timeout)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()


def main(argv: list[str]) -> None:
    """``LEARNER_PID LEARNER_START PID:START …``: watch, then reap."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    roots = {int(pid): int(start) for pid, start in (arg.split(":") for arg in argv[2:])}
    watch(int(argv[0]), int(argv[1]), roots)


if __name__ == "__main__":
    main(sys.argv[1:])
