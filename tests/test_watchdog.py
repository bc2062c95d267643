"""The local cluster's watchdog (``proxrl/runners/watchdog.py``) without Ray: a stand-in learner starts two
processes, one of which starts a grandchild, and a watchdog over them; SIGKILL of the learner takes all three."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from proxrl.runners import watchdog

LEARNER = """
import subprocess, sys, time
from proxrl.runners import watchdog
def start():  # a "cluster": a sleeper, and a process that starts a sleeper of its own
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                      "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); time.sleep(120)"])
    time.sleep(0.5)
guard = watchdog.guard(start)
print(guard.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog reads /proc")
def test_sigkill_of_the_learner_makes_the_watchdog_kill_the_processes_it_started_and_their_children() -> None:
    learner = subprocess.Popen([sys.executable, "-c", LEARNER], stdout=subprocess.PIPE, text=True)
    watcher = int(learner.stdout.readline())  # printed once guard() returned: the watchdog has its first look
    cluster: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 10
        while len(cluster) < 4 and time.monotonic() < deadline:  # 2 children, 1 grandchild, the watchdog
            cluster = watchdog.tree(watchdog.children(learner.pid), watchdog.process_table())
            time.sleep(0.05)
        assert len(cluster) == 4 and watcher in cluster
        learner.kill()
        learner.wait()
        deadline = time.monotonic() + 3
        while watchdog.tree(cluster, watchdog.process_table()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watchdog.tree(cluster, watchdog.process_table()) == {}
    finally:
        watchdog.reap(cluster)
        learner.kill()
        learner.wait()


def test_the_tree_ignores_a_pid_now_held_by_another_process() -> None:
    """A pid is known with its start time: a process that reuses it is not one of the cluster's."""
    table = {10: (1, 500), 11: (10, 501), 12: (11, 502), 20: (1, 600)}
    assert watchdog.tree({10: 500}, table) == {10: 500, 11: 501, 12: 502}
    assert watchdog.tree({10: 499}, table) == {}  # pid 10 now belongs to a later process
    assert watchdog.tree({20: 600, 99: 1}, table) == {20: 600}
