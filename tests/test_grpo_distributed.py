"""Data-parallel GRPO on torch.distributed (gloo, 2 processes on loopback): the run equals one process over the same
global batch, a killed process stops the others with one clear line, and the last checkpoint resumes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
from dp_runs import SAMPLING, SETTINGS  # noqa: E402 - tests/dp_runs.py: the runs' settings
from safetensors.torch import load_file  # noqa: E402 - transformers brings safetensors

TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment() -> dict[str, str]:
    # loopback only: the store on 127.0.0.1, gloo's own sockets on lo; a lost peer is reported within 60 s
    return dict(
        os.environ, MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo", PROXRL_DIST_TIMEOUT_S="60", OMP_NUM_THREADS="1"
    )


def _train_args(run_dir: Path, steps: int, **settings: object) -> list[str]:
    values = {**{k: v for k, v in SETTINGS.items() if k != "progress"}, **settings}
    return [
        "train",
        "grpo",
        "--env",
        "addition",
        "--total-steps",
        str(steps),
        "--run-dir",
        str(run_dir),
        "--quiet",
        *(f"--set={k}={v}" for k, v in values.items()),
    ]


def _torchrun(args: list[str], processes: int = 2) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}", "--nnodes=1"]
    launcher += ["--master-addr=127.0.0.1", f"--master-port={_free_port()}", "-m", "proxrl.cli"]
    return subprocess.run(
        launcher + args, capture_output=True, text=True, env=_environment(), timeout=TIMEOUT_S, check=False
    )


def _torchrun_script(args: list[str]) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--nnodes=1"]
    launcher += ["--master-addr=127.0.0.1", f"--master-port={_free_port()}"]
    return subprocess.run(
        launcher + args, capture_output=True, text=True, env=_environment(), timeout=TIMEOUT_S, check=False
    )


def _one_process(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxrl.cli", *args],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=TIMEOUT_S,
        check=False,
    )


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model" / "model.safetensors"))


def _steps_kept(run_dir: Path) -> list[int]:
    folder = run_dir / "checkpoints"
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    return sorted(int(n.split("_")[1]) for n in names if n.startswith("step_") and n.split("_")[1].isdigit())


def _rows(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with open(run_dir / "progress.csv") as f:
        return list(csv.DictReader(f))


def test_two_gloo_processes_take_the_same_steps_as_one_process_for_every_loss_type(tmp_path):
    # tests/dp_runs.py: grpo (÷ completions), bnpo (÷ each micro-batch's tokens, ÷ micro-batches), dr_grpo
    # (÷ B · L), dapo (÷ the batch's tokens, all-reduced), GSPO's sequence ratio; μ = 2, two micro-batches, β > 0
    script = str(Path(__file__).parent / "dp_runs.py")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = subprocess.run(
        [sys.executable, script, str(tmp_path / "one")], capture_output=True, text=True, env=_environment(), check=False
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = _torchrun_script([script, str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    # fsdp_*: the two processes shard the model (FSDP2: gathered for sampling, gradients reduce-scattered)
    # dapo_dynamic: DAPO's dynamic sampling, its rounds and kept groups decided over the whole round of prompts
    for case in ("grpo", "bnpo", "dr_grpo", "dapo", "gspo", "luspo", "vespo", "dapo_dynamic", "fsdp_dapo", "fsdp_grpo"):
        a, b = torch.load(tmp_path / "one" / f"{case}.pt"), torch.load(tmp_path / "two" / f"{case}.pt")
        for ra, rb in zip(a["rows"], b["rows"], strict=True):  # the same completions, losses, KL and gradient norm
            assert ra["reward"] == pytest.approx(rb["reward"], abs=1e-6), case
            assert ra["completion_tokens"] == rb["completion_tokens"], case
            for key in ("loss", "kl", "clip_frac", "grad_norm"):
                assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), (case, key)
            assert ra["accuracy"] == pytest.approx(rb["accuracy"], abs=1e-9), case  # greedy, split over the two
            for key in SAMPLING:  # the share of flat groups (of the whole round), rounds, groups dropped and kept
                assert ra.get(key) == rb.get(key), (case, key)
            assert "sampling/flat_groups_generated" in rb, case  # logged by every run, counted over the batch
        if case == "dapo_dynamic":
            assert a["rows"][0]["sampling/rounds"] > 1 and a["rows"][0]["sampling/groups_dropped"] > 0, a["rows"]
        moved = max((a["weights"][k] - a["start"][k]).abs().max().item() for k in a["weights"])
        assert moved > 1e-3, case  # the steps changed the weights, and both runs alike
        assert set(b["weights"]) <= set(a["weights"]) and len(b["weights"]) >= len(a["weights"]) - 1, case
        for k in b["weights"]:  # (a sharded run's whole weights name the tied LM head once, as save_pretrained does)
            torch.testing.assert_close(b["weights"][k], a["weights"][k], rtol=0, atol=2e-5, msg=f"{case} {k}")


@pytest.mark.slow
def test_the_cli_under_torchrun_equals_one_process(tmp_path):
    loss_type = "dapo"
    one = _one_process(_train_args(tmp_path / "one", 3, loss_type=loss_type, scale_rewards="batch"))
    assert one.returncode == 0, one.stderr[-2000:]
    two = _torchrun(_train_args(tmp_path / "two", 3, loss_type=loss_type, scale_rewards="batch"))
    assert two.returncode == 0, two.stderr[-3000:]
    # the same completions were sampled (rewards equal), and the weights moved alike
    for a, b in zip(_rows(tmp_path / "one"), _rows(tmp_path / "two"), strict=True):
        assert float(a["reward"]) == pytest.approx(float(b["reward"]), abs=1e-6)
        assert float(a["completion_tokens"]) == float(b["completion_tokens"])
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), abs=1e-5)
        assert float(a["kl"]) == pytest.approx(float(b["kl"]), abs=1e-6)
    start = load_file(str(tmp_path / "one" / "init_model" / "model.safetensors"))
    w1, w2 = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    moved = max((w1[k] - start[k]).abs().max().item() for k in w1)
    assert moved > 1e-3  # the steps changed the weights ...
    for k in w1:  # ... and both runs changed them alike (float tolerance: the sums are taken in another order)
        torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=2e-5)
    assert "2 processes" in two.stdout and two.stdout.count("training grpo") == 1  # rank 0 alone prints


@pytest.mark.slow
def test_two_machines_of_one_process_each_take_the_same_steps_as_one_process(tmp_path):
    # torchrun's several-machine launch: one launcher per machine (--nnodes 2, --node-rank), rank 0's machine hosts
    # the rendezvous. Both "machines" are this one, on loopback, each launcher its own process tree with LOCAL_RANK
    # 0, and one run directory (as on a filesystem every machine sees)
    args = _train_args(tmp_path / "two", 3, loss_type="dapo", scale_rewards="batch")
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=1", "--nnodes=2", f"--node-rank={n}"]
            + ["--master-addr=127.0.0.1", f"--master-port={port}", "-m", "proxrl.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(),
            start_new_session=True,  # its own process group: the launcher and its worker are stopped together
        )
        for n in range(2)
    ]
    try:
        outs = [node.communicate(timeout=TIMEOUT_S) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait(timeout=30)
    for node, (_, err) in zip(nodes, outs, strict=True):
        assert node.returncode == 0, err[-3000:]
    assert "2 processes" in outs[0][0] and outs[1][0].count("training grpo") == 0  # rank 0 (machine 0) prints
    one = _one_process(_train_args(tmp_path / "one", 3, loss_type="dapo", scale_rewards="batch"))
    assert one.returncode == 0, one.stderr[-2000:]
    for a, b in zip(_rows(tmp_path / "one"), _rows(tmp_path / "two"), strict=True):
        assert float(a["reward"]) == pytest.approx(float(b["reward"]), abs=1e-6)
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), abs=1e-5)
    w1, w2 = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=2e-5)


@pytest.mark.slow
def test_accelerate_launch_runs_the_same_steps_as_one_process(tmp_path):
    pytest.importorskip("accelerate")  # (peft brings it)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes=2"]
    launcher += ["--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no", "--main_process_ip=127.0.0.1"]
    launcher += [f"--main_process_port={_free_port()}", "-m", "proxrl.cli"]
    args = _train_args(tmp_path / "two", 3, loss_type="dapo", scale_rewards="batch")
    two = subprocess.run(launcher + args, capture_output=True, text=True, env=_environment(), timeout=TIMEOUT_S)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 processes" in two.stdout  # (accelerate's --multi_gpu is its torch.distributed launcher; gloo here)
    one = _one_process(_train_args(tmp_path / "one", 3, loss_type="dapo", scale_rewards="batch"))
    assert one.returncode == 0, one.stderr[-2000:]
    w1, w2 = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=2e-5)


@pytest.mark.slow
def test_a_killed_process_stops_the_other_with_one_line_and_the_last_checkpoint_resumes(tmp_path):
    run = tmp_path / "run"
    port = _free_port()
    args = _train_args(run, 5000, checkpoint_every=1)
    procs = []
    for rank in range(2):
        env = dict(_environment(), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_PORT=str(port))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "proxrl.cli", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while _steps_kept(run)[-1:] < [2]:
            assert time.monotonic() < deadline, "no checkpoint at step 2"
            assert procs[0].poll() is None, procs[0].communicate()[1][-2000:]
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)
        _, err = procs[0].communicate(timeout=TIMEOUT_S)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    assert procs[0].returncode == 1
    lines = [line for line in err.splitlines() if line.startswith("proxrl:")]
    assert len(lines) == 1 and "another process stopped answering" in lines[0] and "Traceback" not in err, err[-2000:]
    assert "--resume" in lines[0]
    kept = _steps_kept(run)
    resumed = _torchrun(["train", "--resume", str(run), "--total-steps", str(kept[-1] + 1), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming grpo from step {kept[-1]}" in resumed.stdout
    assert int(_rows(run)[-1]["global_step"]) == kept[-1] + 1


@pytest.mark.slow
def test_settings_a_data_parallel_run_cannot_take_are_refused_in_one_line(tmp_path):
    bad = _torchrun(_train_args(tmp_path / "r", 1, prompts_per_step=3))
    assert bad.returncode != 0 and "prompts_per_step=3 must be divisible by the 2 processes" in bad.stderr
    ppo = _torchrun(["train", "ppo", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "p")])
    assert "data-parallel training on torch.distributed is grpo's" in ppo.stderr


@pytest.mark.slow
def test_a_sharded_run_saves_whole_weights_and_resumes_where_it_stopped(tmp_path):
    # ref_sync_every=2: from step 2 only the checkpoints hold π_ref, so the sharded reference is gathered and saved too
    settings = {"fsdp": "true", "checkpoint_every": 1, "ref_sync_every": 2, "loss_type": "dapo"}
    straight = _torchrun(_train_args(tmp_path / "straight", 3, **settings))
    assert straight.returncode == 0, straight.stderr[-3000:]
    stopped = _torchrun(_train_args(tmp_path / "stopped", 2, **settings))
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert (tmp_path / "stopped" / "checkpoints" / "step_000000002" / "reference" / "model.safetensors").is_file()
    resumed = _torchrun(["train", "--resume", str(tmp_path / "stopped"), "--total-steps", "3", "--quiet"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming grpo from step 2" in resumed.stdout
    start = load_file(str(tmp_path / "straight" / "init_model" / "model.safetensors"))
    w1, w2 = _weights(tmp_path / "straight"), _weights(tmp_path / "stopped")
    assert {k: v.shape for k, v in w1.items()} == {k: v.shape for k, v in start.items()}  # whole, not shards
    assert max((w1[k] - start[k]).abs().max().item() for k in w1) > 1e-3
    for k in w1:  # the resumed run took the straight run's third step: weights, Adam state and π_ref came back
        torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=2e-5)
    # the optimiser's state is kept per parameter name: a checkpoint of one layout does not load into the other
    wrong = _torchrun(["train", "--resume", str(tmp_path / "stopped"), "--total-steps", "4", "--set", "fsdp=false"])
    assert wrong.returncode != 0 and "was written with fsdp=True: resume it with --set fsdp=true" in wrong.stderr


@pytest.mark.slow
def test_fsdp_settings_it_cannot_take_are_refused_in_one_line(tmp_path):
    one = _one_process(_train_args(tmp_path / "one", 1, fsdp="true"))
    assert one.returncode == 2 and "fsdp shards the model over the processes of a torchrun launch" in one.stderr
    lora = _torchrun(_train_args(tmp_path / "lora", 1, fsdp="true", lora="true"))
    assert lora.returncode != 0 and "fsdp shards the policy alone" in lora.stderr
