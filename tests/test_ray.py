"""``runners: ray`` on a local one-node Ray cluster (2 CPUs, loopback only): the sync group equals the local runner
bit for bit, a runner killed mid-rollout or hung past ``sample_timeout_s`` costs one fragment and no crash, and
losing every runner stops the run with one clear error."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from proxrl import PG, PPO, MultiAgentPPO, OffPolicyPG
from proxrl.config import read_yaml
from proxrl.errors import ResumeWarning, RunnersLostError
from proxrl.runners import watchdog

pytestmark = pytest.mark.ray

SMALL = dict(
    num_envs=4,
    num_steps=64,
    num_minibatches=2,
    num_epochs=2,
    hidden_sizes=(32,),
    vectorization="sync",
    tensorboard=False,
    seed=3,
)


def _untimed(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.endswith("seconds") and k not in ("time", "sps")}


def _rows(agent: PPO, steps: int) -> list[dict]:
    rows: list[dict] = []
    agent.learn(steps, callback=lambda _agent, row: rows.append(row))
    return rows


@pytest.mark.parametrize(
    ("cls", "extra"),
    [(PG, {"advantage": "gae"}), (OffPolicyPG, {"replay_ratio": 2})],
    ids=["pg-gae", "offpolicy-pg"],
)
def test_two_ray_runners_equal_the_local_runner_bit_for_bit(ray_cluster, tmp_path, cls, extra) -> None:
    """N runners × M envs (sync mode, fixed-length rollouts) train exactly as the local runner with N·M envs."""
    kwargs = {k: v for k, v in SMALL.items() if k in cls.config_class.__dataclass_fields__} | extra
    local = cls("CartPole-v1", run_dir=tmp_path / "local", progress=False, **kwargs)
    local_rows = _rows(local, 3 * 4 * 64)
    sharded = cls("CartPole-v1", run_dir=tmp_path / "ray", progress=False, runners="ray", num_runners=2, **kwargs)
    try:
        ray_rows = _rows(sharded, 3 * 4 * 64)
    finally:
        sharded.close()
    assert torch.equal(sharded.flats["policy"].param, local.flats["policy"].param)
    assert sharded.acting_rng.bit_generator.state == local.acting_rng.bit_generator.state
    for got, expected in zip(ray_rows, local_rows, strict=True):
        assert {k: v for k, v in _untimed(got).items() if k in expected} == _untimed(expected)
        assert got["runners"] == 2 and got["runner_failures"] == 0
    assert sharded.summary()[1] == "runners: 2 × 2 envs, no failures, timeouts, restarts or dropped fragments"


@pytest.mark.parametrize("layout", [(2, 4), (4, 2)], ids=["2x4", "4x2"])
@pytest.mark.parametrize(("preset", "iterations"), [("ppo_cartpole", 2), ("ppo_pendulum", 2)])
def test_a_presets_ppo_on_ray_runners_equals_the_local_runner_bit_for_bit(
    ray_cluster, tmp_path, preset, iterations, layout
) -> None:
    """The preset as a user runs it (its 64-64 network, Pendulum's Gaussian head, its PPO settings) on N runners ×
    M envs trains exactly as the local runner with its 8 envs, under the conditions the docs state: vectorization
    sync, no normalisation (Pendulum's norm_reward is turned off here)."""
    values = {k: v for k, v in read_yaml(f"configs/{preset}.yaml").items() if k not in ("algo", "total_steps")}
    values |= dict(vectorization="sync", norm_reward=False, tensorboard=False, progress=False)
    runners, per_runner = layout
    assert values["num_envs"] == runners * per_runner == 8
    steps = iterations * values["num_envs"] * values["num_steps"]
    local = PPO(run_dir=tmp_path / "local", **values)
    assert local.config.hidden_sizes == (64, 64) and local.config.activation == "tanh"
    local_rows = _rows(local, steps)
    sharded = PPO(run_dir=tmp_path / "ray", runners="ray", num_runners=runners, cpus_per_runner=0.5, **values)
    try:
        ray_rows = _rows(sharded, steps)
    finally:
        sharded.close()
    assert torch.equal(sharded.flats["policy"].param, local.flats["policy"].param)
    for got, expected in zip(ray_rows, local_rows, strict=True):
        assert {k: v for k, v in _untimed(got).items() if k in expected} == _untimed(expected)
        assert got["runners"] == runners


def test_reinforce_collects_whole_episodes_on_ray_runners(ray_cluster, tmp_path) -> None:
    """Episodic rollouts end at a different step in each runner: the batch keeps each runner's complete episodes
    (its later rows masked out) and counts the steps really taken."""
    agent = PG("CartPole-v1", advantage="return", progress=False, runners="ray", num_runners=2, num_envs=4, seed=1)
    before = agent.flats["policy"].param.detach().clone()
    try:
        rows = _rows(agent, 3_000)
    finally:
        agent.close()
    assert not torch.equal(agent.flats["policy"].param, before)
    assert all(r["episodes"] >= 4 * (i + 1) for i, r in enumerate(rows))  # every env's episode, every iteration
    assert agent.global_step == sum(r["samples"] for r in rows) < len(rows) * 4 * agent.config.num_steps


@pytest.mark.parametrize("fail", ["kill", "hang"])
def test_a_runner_killed_or_hung_mid_rollout_costs_its_fragment_not_the_run(ray_cluster, tmp_path, fail) -> None:
    """One env SIGKILLs its runner's process (or hangs) at its 30th step. That iteration, and any while Ray restarts
    the runner, train on the other runner's whole fragment; the restarted runner loads the current weights and
    samples again; the step count is what was collected."""
    flag = tmp_path / "failed"
    agent = PPO(
        "ray_envs:proxrl_test/FailOnce-v0",
        env_kwargs={"flag": str(flag), "fail": fail},
        run_dir=tmp_path / "run",
        progress=False,
        runners="ray",
        num_runners=2,
        sample_timeout_s=8.0 if fail == "hang" else None,
        **SMALL,
    )
    rows: list[dict] = []
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and not (rows and rows[-1]["runners"] == 2 and flag.exists()):
            rows += _rows(agent, 4 * 64)
    finally:
        agent.close()
    assert flag.exists() and rows[-1]["runners"] == 2  # the restarted runner is back
    lost = [i for i, r in enumerate(rows) if r["runners"] == 1]
    assert lost and lost == list(range(lost[0], lost[-1] + 1))  # from the failure until the runner is back
    assert all(rows[i]["samples"] == 2 * 64 for i in lost)  # the healthy runner's 2 envs × T: never a part
    counter = "runner_failures" if fail == "kill" else "runner_timeouts"
    assert rows[-1][counter] == 1 and rows[-1]["runner_failures"] + rows[-1]["runner_timeouts"] == 1
    assert agent.global_step == sum(r["samples"] for r in rows)
    health = agent.summary()[1]  # the CLI's final lines say what went wrong (after close())
    said = "1 runner failure, 0 timeouts" if fail == "kill" else "0 runner failures, 1 timeout"
    assert health.startswith(f"runners: 2 × 2 envs: {said}") and ", 1 restart, " in health, health
    assert f"fragments dropped ({len(lost)} lost, 0 stale)" in health or "1 fragment dropped (1 lost" in health


def test_every_runner_lost_stops_the_run_with_one_clear_error(ray_cluster, tmp_path, capsys) -> None:
    from proxrl.cli import main

    args = ["train", "ppo", "--env", "ray_envs:proxrl_test/FailOnce-v0", "--runners", "ray", "--num-runners", "1"]
    args += ["--env-kwargs", f"flag={tmp_path / 'cli'},fail=kill,at=10", "--max-runner-restarts", "0", "--quiet"]
    args += ["--set", "num_envs=2", "--set", "num_steps=64", "--run-dir", str(tmp_path / "run")]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("proxrl: training stopped: no runner returned a rollout")
    agent = PPO(
        "ray_envs:proxrl_test/FailOnce-v0",
        env_kwargs={"flag": str(tmp_path / "failed"), "fail": "kill", "at": 10},
        progress=False,
        runners="ray",
        num_runners=1,
        max_runner_restarts=0,
        **{**SMALL, "num_envs": 2},
    )
    try:
        with pytest.raises(RunnersLostError, match="max_runner_restarts=0"):
            agent.learn(10 * 2 * 64)
    finally:
        agent.close()


def test_a_ray_run_interrupted_and_resumed_ends_as_the_uninterrupted_local_run(ray_cluster, tmp_path) -> None:
    """The checkpoint holds each runner's envs (and the learner's acting stream); the resumed run rebuilds the
    runners with the same indices and ends with the parameters of an uninterrupted run, bit for bit."""
    kwargs = dict(SMALL, total_steps=6 * 4 * 64, checkpoint_every=1)
    whole = PPO("CartPole-v1", progress=False, **kwargs).learn()
    first = PPO("CartPole-v1", run_dir=tmp_path / "run", progress=False, runners="ray", num_runners=2, **kwargs)
    try:
        first.learn(callback=lambda a, row: a.progress.iteration < 3)
    finally:
        first.close()
    resumed = PPO.load(tmp_path / "run", run_dir=tmp_path / "run", progress=False)
    assert resumed.config.runners == "ray" and resumed.global_step == 3 * 4 * 64
    saved = torch.load(tmp_path / "run" / "checkpoints" / sorted(os.listdir(tmp_path / "run" / "checkpoints"))[-1])
    assert saved["envs"]["seeds"] == [3, 5]  # runner r's envs from seed + r·M (seed 3, M = 2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResumeWarning)  # every runner's envs are put back exactly
            resumed.learn()
    finally:
        resumed.close()
    assert torch.equal(resumed.flats["policy"].param, whole.flats["policy"].param)
    assert list(resumed.progress.recent_returns) == list(whole.progress.recent_returns)


def test_a_local_checkpoint_resumed_on_ray_runners_says_its_envs_start_clean(ray_cluster, tmp_path) -> None:
    kwargs = dict(SMALL, total_steps=4 * 4 * 64, checkpoint_every=1)
    PPO("CartPole-v1", run_dir=tmp_path / "run", progress=False, **kwargs).learn(callback=lambda a, r: False)
    resumed = PPO.load(tmp_path / "run", progress=False, runners="ray", num_runners=2)
    try:
        with pytest.warns(ResumeWarning, match="the local runner's 4 envs"):
            resumed.learn()
    finally:
        resumed.close()
    assert resumed.global_step == 4 * 4 * 64


def test_mappo_on_two_ray_runners_is_reproducible_for_its_layout(ray_cluster) -> None:
    """Multi-agent PPO on runners: each runner's copies and torch stream are seeded from (seed, runner index), so
    the same layout trains the same parameters twice; the batch holds every runner's copies."""
    kwargs = dict(
        env="mpe2.simple_spread_v3",
        env_kwargs={"N": 2, "max_cycles": 10},
        method="mappo",
        num_envs=4,
        num_steps=16,
        hidden_sizes=(16,),
        tensorboard=False,
        progress=False,
        runners="ray",
        num_runners=2,
        seed=4,
    )
    params = []
    for _ in range(2):
        agent = MultiAgentPPO(**kwargs)
        before = parameters_to_vector(agent.policy.parameters()).detach().clone()
        try:
            rows = _rows(agent, 3 * 4 * 16)
        finally:
            agent.close()
        params.append(parameters_to_vector(agent.policy.parameters()).detach())
        assert not torch.equal(params[-1], before)
        assert [r["runners"] for r in rows] == [2, 2, 2] and agent.global_step == 3 * 4 * 16
        assert rows[-1]["episodes"] == 4 * (3 * 16 // 10)  # each of the 4 copies (2 per runner): 4 episodes of 10
    assert torch.equal(params[0], params[1])


def test_mappo_with_the_cnn_on_ray_runners_gets_their_uint8_frames(ray_cluster) -> None:
    """Image observations on runners: each runner's copies send their frames as uint8, the learner's batch holds
    every runner's, and the CNN actor and central critic train on them."""
    agent = MultiAgentPPO(
        env="proxrl.envs.pixel_team",
        method="mappo",
        num_envs=4,
        num_steps=8,
        tensorboard=False,
        progress=False,
        runners="ray",
        num_runners=2,
        seed=5,
    )
    before = parameters_to_vector(agent.policy.parameters()).detach().clone()
    try:
        batch = agent.rollout().collect()  # the agent's own runner group, which learn() then uses
        assert batch.obs.dtype == torch.uint8 and batch.obs.shape == (8, 4, 2, 36 * 36)
        agent.learn(2 * 4 * 8)
    finally:
        agent.close()
    assert not torch.equal(parameters_to_vector(agent.policy.parameters()).detach(), before)


@pytest.mark.parametrize("cls", [PPO, OffPolicyPG], ids=["ppo", "offpolicy-pg"])
def test_async_runners_train_on_fresh_and_stale_fragments_and_drop_the_over_stale(ray_cluster, tmp_path, cls) -> None:
    """One runner steps slowly. The learner updates on whichever fragments arrive: the fast runner's, 0 or 1
    updates old (kept, with their staleness logged), and the slow one's, acted with weights many updates old
    (dropped and counted); the step count is what was trained on."""
    kwargs = {k: v for k, v in SMALL.items() if k in cls.config_class.__dataclass_fields__}
    agent = cls(
        "ray_envs:proxrl_test/SlowInOne-v0",
        env_kwargs={"flag": str(tmp_path / "slow")},
        progress=False,
        runners="ray",
        num_runners=2,
        runner_mode="async",
        max_staleness=1,
        **{**kwargs, "num_steps": 16},
    )
    rows: list[dict] = []
    deadline = time.monotonic() + 90  # the slow runner's first fragments come once its process is up
    try:
        while time.monotonic() < deadline and not (rows and rows[-1]["stale_dropped"] >= 1):
            rows += _rows(agent, 10 * 4 * 16)
    finally:
        agent.close()
    assert rows[-1]["stale_dropped"] >= 1
    assert f"dropped (0 lost, {rows[-1]['stale_dropped']:.0f} stale)" in agent.summary()[1]
    assert sum(r["staleness_1"] for r in rows) >= 1 and sum(r["staleness_0"] for r in rows) >= 1
    assert all(r["staleness_0"] + r["staleness_1"] == 2 for r in rows)  # two kept fragments per update
    assert all(r["samples"] == 4 * 16 for r in rows) and agent.global_step == sum(r["samples"] for r in rows)
    assert all(0.0 < r["mean_weight"] <= 1.0 for r in rows)  # min(c̄ = 1, π/β)


def test_the_torch_acting_path_on_ray_runners_is_reproducible_for_its_layout(ray_cluster) -> None:
    """Where numpy acting does not apply (an ELU network), each runner samples from its own seeded torch stream:
    the same layout trains the same parameters twice."""
    params = []
    for _ in range(2):
        agent = PPO("CartPole-v1", progress=False, runners="ray", num_runners=2, activation="elu", **SMALL)
        try:
            agent.learn(2 * 4 * 64)
        finally:
            agent.close()
        params.append(agent.flats["policy"].param.detach().clone())
    assert torch.equal(params[0], params[1])


def _train_in_own_session(run_dir: Path) -> tuple[subprocess.Popen, dict[int, int]]:
    """``proxrl train`` on 2 Ray runners (its own local cluster) in a session and process group of its own, once
    it has logged an iteration; with the cluster's processes (``{pid: start time}``: the learner's descendants,
    runners and watchdog included), collected before anything is done to it."""
    args = [sys.executable, "-m", "proxrl.cli", "train", "ppo", "--env", "CartPole-v1", "--runners", "ray"]
    args += ["--num-runners", "2", "--total-steps", "10000000", "--run-dir", str(run_dir), "--quiet"]
    args += ["--set", "num_envs=4", "--set", "num_steps=256", "--set", "vectorization=sync"]
    learner = subprocess.Popen(args, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not (run_dir / "progress.csv").exists() and learner.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # a few more iterations: the runners are mid-rollout more often than not
    cluster = watchdog.tree(watchdog.children(learner.pid), watchdog.process_table())
    assert learner.poll() is None and len(cluster) >= 5, (cluster, learner.stderr.read() if learner.stderr else "")
    return learner, cluster


def _left_after(cluster: dict[int, int], seconds: float) -> dict[int, int]:
    """The processes of ``cluster`` still running after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := watchdog.tree(cluster, watchdog.process_table())) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {pid: t for pid, t in left.items() if pid in cluster}


def test_a_learner_killed_with_sigkill_takes_its_local_cluster_with_it(tmp_path) -> None:
    """Issue 35: SIGKILL of the learner left ray::DashboardAgent and ray::RuntimeEnvAgent running. Its watchdog
    kills every process of the cluster the learner started within a few seconds."""
    learner, cluster = _train_in_own_session(tmp_path / "run")
    try:
        learner.kill()
        learner.wait(10)
        assert _left_after(cluster, 5.0) == {}
    finally:
        watchdog.reap(cluster)
        learner.kill()
        learner.communicate()


def test_ctrl_c_to_the_whole_process_group_saves_at_the_step_reached_and_exits_130(tmp_path) -> None:
    """A terminal's Ctrl-C reaches the learner and the processes of its process group (here SIGINT goes to the
    runners' processes too): the runners finish their rollouts (no runner failure), the learner saves at the last
    logged step and exits 130 as it does locally, and the cluster is gone after it."""
    learner, cluster = _train_in_own_session(tmp_path / "run")
    runners = [pid for pid in cluster if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::EnvRunner")]
    try:
        os.killpg(learner.pid, signal.SIGINT)
        for pid in runners:  # Ray 2.60 puts its workers in process groups of their own: the terminal's may not
            os.kill(pid, signal.SIGINT)
        _, err = learner.communicate(timeout=60)
        assert learner.returncode == 130, err
        rows = list(csv.DictReader((tmp_path / "run" / "progress.csv").open()))
        step = int(rows[-1]["global_step"])
        assert float(rows[-1]["runner_failures"]) == 0 and float(rows[-1]["runners"]) == 2
        kept = tmp_path / "run" / "checkpoints" / f"ckpt_{step:012d}.pt"
        lines = [line for line in err.splitlines() if line.startswith(("proxrl:", "resume with"))]
        assert lines == [
            "proxrl: SIGINT: finishing this iteration and saving a checkpoint (again to stop at once)",
            f"proxrl: stopped by SIGINT at step {step:,}; kept {kept}",
            f"resume with: proxrl train --resume {tmp_path / 'run'}",
        ]
        assert kept.exists() and _left_after(cluster, 5.0) == {}
    finally:
        watchdog.reap(cluster)
        learner.kill()
