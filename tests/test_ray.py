"""``runners: ray`` on a local one-node Ray cluster (2 CPUs, loopback only): the sync group equals the local runner
bit for bit, a runner killed mid-rollout or hung past ``sample_timeout_s`` costs one fragment and no crash, and
losing every runner stops the run with one clear error."""

from __future__ import annotations

import time

import pytest
import torch

from proxrl import PPO
from proxrl.errors import RunnersLostError

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


def _rows(agent: PPO, steps: int) -> list[dict]:
    rows: list[dict] = []
    agent.learn(steps, callback=lambda _agent, row: rows.append(row))
    return rows


def test_ppo_on_two_ray_runners_equals_the_local_runner_bit_for_bit(ray_cluster, tmp_path) -> None:
    local = PPO("CartPole-v1", run_dir=tmp_path / "local", progress=False, **SMALL)
    local_rows = _rows(local, 3 * 4 * 64)
    sharded = PPO("CartPole-v1", run_dir=tmp_path / "ray", progress=False, runners="ray", num_runners=2, **SMALL)
    try:
        ray_rows = _rows(sharded, 3 * 4 * 64)
    finally:
        sharded.close()
    assert torch.equal(sharded.flats["policy"].param, local.flats["policy"].param)
    assert sharded.acting_rng.bit_generator.state == local.acting_rng.bit_generator.state
    for got, expected in zip(ray_rows, local_rows, strict=True):
        for key in ("global_step", "episodes", "mean_return", "policy_loss", "value_loss", "approx_kl"):
            assert got[key] == expected[key], key
        assert got["runners"] == 2 and got["runner_failures"] == 0


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


def test_every_runner_lost_stops_the_run_with_one_clear_error(ray_cluster, tmp_path) -> None:
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
