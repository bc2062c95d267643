"""Every code block of README.md and docs/*.md runs as written, with training budgets shrunk.

Python blocks run in the default tier (``exec`` in a fresh folder); command blocks run in the ``docs`` tier
(``make test-docs``, and CI) through bash, where a ``proxrl`` shell function appends budget flags so that a
figure's 3-seed command takes seconds. Lines that cannot run inside a test say why in ``NOT_RUN_HERE``.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
# Python blocks train for 100k+ steps to show real use; here they train for a few hundred (each must match once)
SHRINK = {"learn(100_000)": "learn(512)", "learn(150_000)": "learn(256)", "learn(20_000)": "learn(256)"}
# command lines a test cannot run, and where they are run instead
NOT_RUN_HERE = {
    "make demo": "the first of the README's two commands: CI runs the README's commands from a fresh clone",
    "make test": "this test suite itself",
    "ray start": "starts a cluster on the machine's network address: benchmarks/ray_scaling.py --multinode runs "
    "the same path in private network namespaces",
    "HEAD_IP": "needs a running multi-machine cluster (see ray start)",
    "--ray-address auto": "joins the cluster `ray start` started: benchmarks/ray_startup.py times the same join of a "
    "running cluster on loopback",
    "ray stop": "stops every Ray cluster of this user on the machine, other runs' included",
    "MACHINE0": "needs several machines: tests/test_grpo_distributed.py starts the same torchrun launch as two "
    "launchers on loopback",
    "pip install": "installs into the environment: CI's setup script installs the dev extra, which holds every one",
    "make mutation": "the mutation run takes ~20 minutes (docs/testing.md has its latest results)",
    "scripts/mutation.py --only": "runs the default tier once per mutant (minutes)",
}
BUDGET = r"""
proxrl() {
  case "$1" in
    train)
      if [[ " $* " == *" --help "* ]]; then command proxrl "$@" > /dev/null; return; fi
      local extra=(--quiet --eval-episodes 1)
      if [[ " $* " == *" grpo "* || " $* " == *grpo_* ]]; then
        extra+=(--total-steps 2 --set warmup_steps=10 --set eval_examples=8 --set prompts_per_step=4)
      elif [[ " $* " == *" --resume "* ]]; then extra+=(--total-steps 1024)
      else extra+=(--total-steps 512); fi
      command proxrl "$@" "${extra[@]}" ;;
    bench) command proxrl "$@" --steps 1024 ;;
    tune) command proxrl "$@" --trials 2 --steps 256 --evaluations 2 --eval-episodes 1 ;;
    *) command proxrl "$@" ;;
  esac
}
torchrun() {  # a free loopback port; a GRPO run's budget as above
  command torchrun --master-addr=127.0.0.1 --master-port=$((20000 + RANDOM % 20000)) "$@" --quiet \
    --total-steps 2 --set warmup_steps=10 --set eval_examples=8 --set prompts_per_step=4
}
"""


def blocks(language: str) -> list[tuple[str, str]]:
    """(page:line, code) of every fenced block in ``language`` (``bash``/``sh`` for commands)."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            if m.group(1) == language or (language == "bash" and m.group(1) == "sh"):
                line = text[: m.start()].count("\n") + 1
                found.append((f"{page.relative_to(ROOT)}:{line}", m.group(2)))
    return found


def _shrunk(code: str) -> str:
    for long, short in SHRINK.items():
        code = code.replace(long, short)
    return code


def test_every_shrink_applies_to_some_block():
    python = "".join(code for _, code in blocks("python"))
    assert all(long in python for long in SHRINK), "a README edit made a SHRINK entry stale"


@pytest.mark.parametrize("where, code", blocks("python"), ids=lambda v: v if ":" in str(v) else "")
def test_python_block_runs(where, code, tmp_path, monkeypatch):
    if "mpe2" in code:
        pytest.importorskip("mpe2")
    monkeypatch.chdir(tmp_path)
    exec(compile(_shrunk(code), where, "exec"), {"__name__": "__docs__"})


def _runnable_lines(code: str) -> tuple[str, list[str]]:
    """The block as a bash script without the lines of NOT_RUN_HERE, and those lines."""
    script, skipped = [], []
    for line in code.replace("\\\n", " ").splitlines():
        if any(marker in line for marker in NOT_RUN_HERE):
            skipped.append(line)
        else:
            script.append(line)
    return "\n".join(script), skipped


@pytest.mark.docs
@pytest.mark.parametrize("where, code", blocks("bash"), ids=lambda v: v if ":" in str(v) else "")
def test_command_block_runs(where, code, tmp_path):
    script, skipped = _runnable_lines(code)
    if not script.strip():
        pytest.skip("; ".join(reason for marker, reason in NOT_RUN_HERE.items() if marker in code))
    for folder in ("configs", "benchmarks", "docs", "scripts", "proxrl", "tests"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    r = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", BUDGET + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, f"{where}: {r.stderr[-3000:]}"
