"""Work is never lost: Ctrl-C saves, damaged checkpoints fall back and say so, a run directory is never silently
overwritten or written by two processes, and a GRPO run directory can be moved."""

import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from proxrl import PPO, checkpoint, load, rundir
from proxrl.cli import main

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "proxrl.cli"]
SMALL = dict(num_envs=2, num_steps=16, num_minibatches=2, hidden_sizes=(16,), tensorboard=False, progress=False, seed=0)
GRPO_TINY = [
    "tiny_hidden_size=16",
    "tiny_layers=1",
    "tiny_heads=2",
    "warmup_steps=5",
    "prompts_per_step=2",
    "group_size=4",
    "max_new_tokens=4",
    "eval_every=0",
    "eval_examples=4",
    "torch_threads=1",
]
# each method's `proxrl train` arguments for a run that would go on for minutes
METHODS = {
    "ppo": ["ppo", "--env", "CartPole-v1", "--set", "num_envs=2", "--set", "num_steps=64"],
    "reinforce": ["reinforce", "--env", "CartPole-v1", "--set", "num_envs=2"],
    "offpolicy_pg": ["offpolicy_pg", "--env", "CartPole-v1", "--set", "num_envs=2"],
    "mappo": ["mappo", "--env", "proxrl.envs.matrix_games", "--set", "num_envs=2", "--set", "num_steps=16"],
    "grpo": ["grpo", "--env", "addition", *[f"--set={kv}" for kv in GRPO_TINY]],
}


def _popen(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    return subprocess.Popen(
        [*CLI, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def _wait_for_rows(run: Path, proc, rows: int = 2, limit: float = 120) -> None:
    deadline = time.time() + limit
    csv = run / "progress.csv"
    while time.time() < deadline and proc.poll() is None:
        if csv.exists() and len(csv.read_text().splitlines()) > rows:
            return
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no progress rows in {limit} s: {proc.communicate()[1][-2000:]}")


@pytest.mark.parametrize(
    "method", [m if m in ("ppo", "grpo") else pytest.param(m, marks=pytest.mark.slow) for m in METHODS]
)
def test_a_first_signal_finishes_the_iteration_saves_and_says_how_to_resume(tmp_path, method):
    run = tmp_path / "run"
    proc = _popen(["train", *METHODS[method], "--total-steps", "100000000", "--run-dir", str(run), "--quiet"])
    _wait_for_rows(run, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "SIGINT: finishing this iteration and saving a checkpoint" in err
    assert f"resume with: proxrl train --resume {run}" in err
    kept = err.split("kept ")[1].split("\n")[0]
    step = int(err.split("at step ")[1].split(";")[0].replace(",", ""))
    agent = load(kept)
    assert agent.global_step == step > 0  # the checkpoint holds the iteration the signal interrupted
    rows = (run / "progress.csv").read_text().splitlines()
    assert int(rows[-1].split(",")[0]) == step  # every logged step is in the checkpoint: nothing was lost
    assert "Traceback" not in err


@pytest.mark.slow
def test_sigterm_saves_too_and_a_second_signal_stops_at_once(tmp_path):
    run = tmp_path / "run"
    proc = _popen(["train", *METHODS["ppo"], "--total-steps", "100000000", "--run-dir", str(run), "--quiet"])
    _wait_for_rows(run, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "stopped by SIGTERM" in err, err[-2000:]

    # a long iteration (one rollout of 2 × 500,000 steps): the second signal does not wait for it
    proc = _popen(["train", "--resume", str(run), "--set", "num_steps=500000", "--quiet"])
    deadline = time.time() + 60
    while time.time() < deadline and "resuming" not in (proc.stdout.readline() or "resuming"):
        pass
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    start = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.time() - start < 10
    assert proc.returncode == 130 and "stopped at once" in err, err[-2000:]
    assert "Traceback" not in err


def test_python_api_gets_a_keyboard_interrupt_after_the_save(tmp_path):
    """A script or notebook stops as on Ctrl-C, and the run directory keeps the interrupted iteration."""
    from proxrl.errors import Interrupted

    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    agent = PPO("CartPole-v1", run_dir=tmp_path / "run", **SMALL)
    with pytest.raises(KeyboardInterrupt) as info:
        agent.learn(
            10_000, callback=lambda a, row: os.kill(os.getpid(), signal.SIGINT) if a.global_step == 64 else None
        )
    assert isinstance(info.value, Interrupted) and info.value.step == 64
    with pytest.warns(checkpoint.CheckpointFallbackWarning) as notes:
        assert PPO.load(tmp_path / "run").global_step == 64
    assert [str(n.message) for n in notes][-1] == "using checkpoints/ckpt_000000000064.pt (step 64)"
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back


def _small_run(run: Path, steps: int = 96) -> None:
    agent = PPO("CartPole-v1", run_dir=run, checkpoint_every=1, keep_checkpoints=3, **SMALL)
    agent.learn(steps)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda p: p.write_bytes(b""), "damaged: an empty file (0 bytes)"),
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "damaged (truncated or overwritten"),
        (lambda p: p.write_bytes(b"hello" * 20), "damaged (truncated or overwritten"),
        (lambda p: torch.save({"f": warnings.WarningMessage}, p), "not a proxrl checkpoint: it holds Python objects"),
    ],
)
def test_a_damaged_file_is_named_damaged_and_the_run_falls_back_to_the_newest_valid_one(tmp_path, damage, problem):
    run = tmp_path / "run"
    _small_run(run)
    damage(run / "model.pt")
    with pytest.raises(checkpoint.DamagedCheckpointError, match=re.escape(problem)):
        checkpoint.load(run / "model.pt")
    with pytest.warns(checkpoint.CheckpointFallbackWarning) as notes:
        agent = PPO.load(run)
    assert agent.global_step == 96
    text = [str(n.message) for n in notes]
    assert text[0].startswith(f"skipped model.pt: {problem}")
    assert text[-1] == "using checkpoints/ckpt_000000000096.pt (step 96)"
    assert "safely" not in " ".join(text)


def test_eval_and_resume_on_a_damaged_run_fall_back_or_name_every_bad_file(tmp_path, capsys):
    run = tmp_path / "run"
    _small_run(run)
    (run / "model.pt").write_bytes(b"")
    newest = run / "checkpoints" / "ckpt_000000000096.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    proc = _popen(["eval", str(run), "--episodes", "1"])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    *skipped, used = err.splitlines()  # newest file first: these two were damaged in this order
    assert skipped == [
        "proxrl: note: skipped checkpoints/ckpt_000000000096.pt: damaged (truncated or overwritten: "
        "PytorchStreamReader failed reading zip archive: failed finding central directory)",
        "proxrl: note: skipped model.pt: damaged: an empty file (0 bytes)",
    ]
    assert used == "proxrl: note: using checkpoints/ckpt_000000000064.pt (step 64)"
    with pytest.warns(checkpoint.CheckpointFallbackWarning):
        assert main(["train", "--resume", str(run), "--total-steps", "128", "--quiet", "--eval-episodes", "0"]) == 0
    assert "resuming ppo from step 64" in capsys.readouterr().out

    for file in (run / "checkpoints").glob("*.pt"):
        file.write_bytes(b"")
    (run / "model.pt").write_bytes(b"x")
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"proxrl: error: no valid checkpoint in {run}: ") and err.count("\n") == 0
    assert err.count("damaged") == 1 + len(list((run / "checkpoints").glob("*.pt")))


def test_a_deleted_final_save_is_said_not_silently_replaced(tmp_path):
    run = tmp_path / "run"
    _small_run(run)
    (run / "model.pt").unlink()
    with pytest.warns(checkpoint.CheckpointFallbackWarning) as notes:
        assert PPO.load(run).global_step == 96
    assert f"{run} has no final save (interrupted, or deleted)" in [str(n.message) for n in notes]


def test_an_existing_run_is_never_silently_overwritten(tmp_path, capsys):
    run = tmp_path / "run"
    _small_run(run)
    before = (run / "model.pt").read_bytes()
    args = ["train", "pg", "--env", "CartPole-v1", "--total-steps", "64", "--run-dir", str(run), "--quiet"]
    assert main([*args, "--eval-episodes", "0"]) == 2
    err = capsys.readouterr().err
    assert f"{run} already holds a run" in err and f"--resume {run}" in err and "--overwrite" in err
    assert (run / "model.pt").read_bytes() == before

    assert main([*args, "--eval-episodes", "0", "--overwrite", "--set", "num_envs=2"]) == 0
    assert load(str(run)).algo == "pg"
    assert not (run / "checkpoints").exists()  # the old run's checkpoints are gone, not mixed with the new ones
    assert not list(run.glob(".*.replaced"))


def test_a_second_process_on_a_run_directory_is_refused(tmp_path):
    run = tmp_path / "run"
    _small_run(run)
    with rundir.locked(run):  # this process holds the run, as a training process does
        for args in (["train", "--resume", str(run)], ["train", "ppo", "--run-dir", str(run), "--overwrite"]):
            proc = _popen(args)
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 2
            assert err.strip() == f"proxrl: error: {run} is in use by another proxrl process (pid {os.getpid()}): " + (
                "wait for it to finish, stop it, or choose another --run-dir"
            )
    assert main(["train", "--resume", str(run), "--total-steps", "112", "--quiet", "--eval-episodes", "0"]) == 0


def test_leftovers_of_a_killed_prune_or_replace_are_cleaned_at_start(tmp_path):
    run = tmp_path / "run"
    _small_run(run)
    half = run / "checkpoints" / ".step_000000002.del"
    half.mkdir()
    (run / ".checkpoints.replaced").mkdir()
    (run / "checkpoints" / ".ckpt_000000000001.pt.x.tmp").write_bytes(b"partial")
    resumed = PPO.load(run, run_dir=run, progress=False)
    resumed.learn(16)
    hidden = [p.name for p in run.rglob(".*") if p.name != rundir.LOCK_FILE]
    assert hidden == []


def test_a_grpo_run_directory_can_be_moved_and_resumed(tmp_path):
    pytest.importorskip("transformers")
    from proxrl import GRPO

    kwargs = {k: int(v) if v.isdigit() else v for k, v in (kv.split("=") for kv in GRPO_TINY)}
    agent = GRPO(env="addition", beta=0.1, checkpoint_every=1, run_dir=tmp_path / "run", progress=False, **kwargs)
    agent.learn(2)
    state = checkpoint.load(tmp_path / "run" / "checkpoints" / "step_000000002" / checkpoint.TRAINER_STATE)
    assert state["reference"] == "../../init_model"  # relative to the checkpoint, inside the run
    (tmp_path / "run").rename(tmp_path / "moved")
    resumed = GRPO.load(tmp_path / "moved", run_dir=tmp_path / "moved", progress=False)
    assert Path(resumed.reference.source) == (tmp_path / "moved" / "init_model").resolve()
    assert all(
        torch.equal(p, q)
        for p, q in zip(resumed.reference.model.parameters(), agent.reference.model.parameters(), strict=True)
    )
    resumed.learn(1)
    assert resumed.global_step == 3


def test_a_run_killed_before_its_first_checkpoint_says_how_to_start_again(tmp_path, capsys):
    run = tmp_path / "run"
    _small_run(run)
    (run / "model.pt").unlink()
    for f in (run / "checkpoints").iterdir():
        f.unlink()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "holds a run that stopped before its first checkpoint" in err
    assert f"proxrl train --config {run}/config.yaml --run-dir {run} --overwrite" in err
    again = ["train", "--config", f"{run}/config.yaml", "--run-dir", str(run), "--overwrite", "--quiet"]
    assert main([*again, "--total-steps", "64", "--eval-episodes", "0"]) == 0  # the algorithm from config.yaml
    assert PPO.load(run).global_step == 64 and PPO.load(run).config.hidden_sizes == (16,)
