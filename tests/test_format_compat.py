"""Checkpoints written by an earlier proxrl still mean what they meant: each stored fixture of
``tests/data/format-v<N>/`` (written by ``scripts/make_format_fixtures.py``) loads with ``proxrl.load``, gives the
outputs it gave when it was written on its stored inputs, is read by ``proxrl eval``, and resumes training.

Tolerances: discrete actions (and GRPO's greedy completions) are compared exactly; the fixtures keep only inputs
whose greedy action leads the runner-up by ≥ 1e-3 in log π, far above float rounding. Box actions and summed
token log-probabilities are floats compared with atol 1e-5 and 1e-4 (float32 forward passes that may be
regrouped by a refactor; a wrong weight or normaliser moves them by far more).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import proxrl

DATA = Path(__file__).parent / "data"
VERSIONS = sorted(DATA.glob("format-v*"))
SCRIPT = Path(__file__).parents[1] / "scripts" / "make_format_fixtures.py"
spec = importlib.util.spec_from_file_location("make_format_fixtures", SCRIPT)
assert spec is not None and spec.loader is not None
fixtures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixtures)  # its outputs(): the one measurement the script stored and this test repeats

CASES = [(folder.name, record.stem) for folder in VERSIONS for record in sorted(folder.glob("*.json"))]
ENV_CASES = [case for case in CASES if not case[1].startswith("grpo")]


def checkpoint_of(version: str, name: str) -> Path:
    """The stored checkpoint: a file, or GRPO's save_pretrained folder."""
    folder = DATA / version
    return folder / name if (folder / name).is_dir() else folder / f"{name}.pt"


def test_every_format_version_since_the_oldest_supported_has_fixtures_of_every_trainer() -> None:
    assert VERSIONS, "tests/data/format-v*/ is missing: run scripts/make_format_fixtures.py"
    newest = {name for version, name in CASES if version == VERSIONS[-1].name}
    assert {"ppo_cartpole", "reinforce_cartpole", "offpolicy_pg_pendulum", "ippo_tictactoe", "grpo_addition"} <= newest
    assert all(int(v.name.removeprefix("format-v")) >= proxrl.checkpoint.OLDEST_FORMAT for v in VERSIONS)


@pytest.mark.parametrize("version, name", CASES)
def test_a_stored_checkpoint_gives_the_outputs_it_gave_when_written(version: str, name: str) -> None:
    record = json.loads((DATA / version / f"{name}.json").read_text())
    agent = proxrl.load(str(checkpoint_of(version, name)))
    got, want = fixtures.outputs(agent, record["inputs"]), record["outputs"]
    if "completions" in want:
        assert got["completions"] == want["completions"]
        np.testing.assert_allclose(got["logp_sums"], want["logp_sums"], rtol=0, atol=1e-4)
    elif np.asarray(want["actions"]).dtype.kind == "f":  # Box actions
        np.testing.assert_allclose(got["actions"], want["actions"], rtol=0, atol=1e-5)
    else:
        assert got["actions"] == want["actions"]


@pytest.mark.parametrize("version, name", ENV_CASES)
def test_training_resumes_from_a_stored_checkpoint_for_one_iteration(version: str, name: str, tmp_path: Path) -> None:
    agent = proxrl.load(str(checkpoint_of(version, name)), run_dir=tmp_path / "run", tensorboard=False)
    step, iteration = agent.global_step, agent.progress.iteration
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.learn(1)  # one iteration: it runs while the target step is ahead
    agent.close()
    assert (agent.global_step > step, agent.progress.iteration) == (True, iteration + 1)
    assert any(not torch.equal(p, q) for p, q in zip(agent.policy.parameters(), before, strict=True))
    assert (tmp_path / "run" / "model.pt").is_file()


def test_grpo_resumes_from_its_stored_folder_for_one_step(tmp_path: Path) -> None:
    version = VERSIONS[-1].name
    agent = proxrl.load(str(checkpoint_of(version, "grpo_addition")), run_dir=tmp_path / "run")
    step = agent.global_step
    agent.learn(1)
    assert agent.global_step == step + 1
    assert (tmp_path / "run" / "model" / "trainer_state.pt").is_file()


def test_proxrl_eval_reads_a_stored_checkpoint() -> None:
    path = checkpoint_of(VERSIONS[-1].name, "ppo_cartpole")
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    )
    r = subprocess.run(
        [sys.executable, "-m", "proxrl.cli", "eval", str(path), "--episodes", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ppo on CartPole-v1: 2 episodes (deterministic): mean return ")
