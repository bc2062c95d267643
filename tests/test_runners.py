"""The runner group's assembly, without Ray: N runners × M envs give the columns, episodes and acting stream of one
local rollout over N·M envs, bit for bit (sync vectorisation, numpy acting, M ≥ 2)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from proxrl.algos.ppo import PPOConfig
from proxrl.envs import make_vec_env
from proxrl.fast.flat_adam import FlatParameters
from proxrl.rollout import Batch, Rollout
from proxrl.runners.group import InProcessGroup, staleness_kept
from proxrl.runners.normalizers import added_moments, merge_added
from proxrl.runners.runner import SliceOfDraws, build_policy


def _local(cfg: PPOConfig, policy: torch.nn.Module, rng: np.random.Generator) -> Rollout:
    venv, _ = make_vec_env(cfg.env, cfg.num_envs, cfg.seed, cfg.env_kwargs, "sync")
    rollout = Rollout(venv, policy, cfg.num_steps, torch.device("cpu"), rng=rng)
    obs, _ = venv.reset(seed=cfg.seed)
    rollout.start(obs)
    return rollout


@pytest.mark.parametrize(("env", "runners", "envs"), [("CartPole-v1", 2, 4), ("Pendulum-v1", 3, 6)])
def test_sharded_group_gives_the_local_rollouts_columns_episodes_and_acting_stream(
    env: str, runners: int, envs: int
) -> None:
    cfg = PPOConfig(env=env, num_envs=envs, num_steps=96, num_runners=runners, vectorization="sync", seed=5)
    torch.manual_seed(0)
    policy = build_policy(cfg)
    flat = FlatParameters(policy)
    local_rng, group_rng = np.random.default_rng(cfg.seed), np.random.default_rng(cfg.seed)
    local = _local(cfg, policy, local_rng)
    group = InProcessGroup(cfg, lambda: flat.param.detach().numpy(), group_rng, torch.device("cpu"), 0)
    episodes = 0
    for iteration in range(3):
        expected = local.collect()
        got = group.collect()
        for name in Batch.__dataclass_fields__:
            assert torch.equal(getattr(got, name), getattr(expected, name)), (iteration, name)
        assert group.episodes.ended_at == local.episodes.ended_at
        assert group.episodes.drain() == local.episodes.drain()
        episodes += len(local.episodes.returns)
        np.testing.assert_array_equal(group.obs, local.obs)
        assert group.steps_taken == local.steps_taken == envs * cfg.num_steps
        assert group_rng.bit_generator.state == local_rng.bit_generator.state
        with torch.no_grad():  # a new version of the weights reaches every runner
            flat.param.add_(0.01 * torch.randn_like(flat.param))
    assert group.env_steps == local.env_steps == 3 * envs * cfg.num_steps
    group.close()


def test_slice_of_draws_hands_each_runner_its_rows_of_the_one_stream() -> None:
    whole = np.random.default_rng(1).random((6, 1))
    parts = [SliceOfDraws(np.random.default_rng(1), 6, first, 2).random((2, 1)) for first in (0, 2, 4)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    normal = np.random.default_rng(2).standard_normal((6, 3), dtype=np.float32)
    part = SliceOfDraws(np.random.default_rng(2), 6, 3, 3).standard_normal((3, 3), dtype=np.float32)
    np.testing.assert_array_equal(part, normal[3:])


def _moments(x: np.ndarray) -> dict:
    return {"mean": x.mean(0).tolist(), "var": x.var(0).tolist(), "count": float(len(x))}


def test_normaliser_parts_added_by_each_runner_merge_into_the_statistics_of_all_the_data() -> None:
    """added_moments undoes gymnasium's merge; merging every runner's part into the base gives the moments of the
    base's data and all the runners' data together (float64, atol 1e-12)."""
    rng = np.random.default_rng(0)
    base_data = rng.normal(3.0, 2.0, (50, 3))
    runner_data = [rng.normal(-1.0, 0.5, (n, 3)) for n in (40, 7, 120)]
    base = {"obs": _moments(base_data)}
    afters = [{"obs": _moments(np.concatenate([base_data, d]))} for d in runner_data]  # each runner: base + its own
    added = [added_moments(after, base) for after in afters]
    for part, data in zip(added, runner_data, strict=True):
        np.testing.assert_allclose(part["obs"]["mean"], data.mean(0), atol=1e-12)
        np.testing.assert_allclose(part["obs"]["var"], data.var(0), atol=1e-12)
        assert part["obs"]["count"] == len(data)
    merged = merge_added(base, added)["obs"]
    everything = np.concatenate([base_data, *runner_data])
    np.testing.assert_allclose(merged["mean"], everything.mean(0), atol=1e-12)
    np.testing.assert_allclose(merged["var"], everything.var(0), atol=1e-12)
    assert merged["count"] == len(everything)
    assert added_moments(base, base) == {}  # a runner that added nothing contributes nothing


def test_the_group_merges_every_runners_observation_and_return_statistics_once() -> None:
    cfg = PPOConfig(
        env="Pendulum-v1",
        num_envs=4,
        num_steps=32,
        num_runners=2,
        vectorization="sync",
        norm_obs=True,
        norm_reward=True,
    )
    flat = FlatParameters(build_policy(cfg))
    group = InProcessGroup(cfg, lambda: flat.param.detach().numpy(), np.random.default_rng(0), torch.device("cpu"), 0)
    group.collect()
    start = {name: stats["count"] - 4 * 32 for name, stats in group.normalizers.items()}
    for _ in range(2):
        group.collect()
        for runner in group.runners:  # each went on from the run's statistics: all but the other runner's part
            for name in ("obs", "reward"):
                other = 2 * 32  # the other runner's 2 envs × T
                assert runner.norms.state()[name]["count"] == pytest.approx(group.normalizers[name]["count"] - other)
    for name in ("obs", "reward"):
        assert group.normalizers[name]["count"] == pytest.approx(start[name] + 3 * 4 * 32, abs=1e-9)
    group.close()


def test_ppo_corrects_stale_fragments_with_vtrace_targets_and_truncated_weights() -> None:
    """runner_mode=async: π_prox (the current policy) replaces π_old, V-trace gives the critic's targets, and Â is
    min(c̄, π_prox/β)·(r + γ v_{t+1} − V(s_t)), by hand here on a local rollout with a made-up older β."""
    from proxrl import PPO
    from proxrl.advantages import vtrace

    ppo = PPO("CartPole-v1", num_envs=4, num_steps=32, hidden_sizes=(16,), tensorboard=False, progress=False)
    rollout = ppo.rollout()
    batch = rollout.collect()
    t, n = batch.rewards.shape
    with torch.no_grad():
        dist, values = ppo.policy(batch.obs.reshape(t * n, -1))
        logp_prox = dist.log_prob(batch.actions.reshape(-1)).reshape(t, n)
        values = values.reshape(t, n)
        last = ppo.policy.value(torch.as_tensor(rollout.obs))
    shift = torch.zeros(t, n)
    shift[:, :2] = 0.5  # β gave these actions more probability than π_prox does now: weight e^−0.5
    shift[:, 2] = -0.5  # … or less: weight min(c̄ = 1, e^0.5) = 1
    stale = replace(batch, logp=logp_prox + shift, values=batch.values + 1.0)  # an older critic
    stale.truncated[5, 0] = True  # a truncation: V(final obs) is the behaviour critic's
    prox, adv, targets, stats = ppo._stale_corrected(stale, rollout.obs)
    torch.testing.assert_close(prox.logp, logp_prox, rtol=0, atol=1e-6)
    weight = torch.ones(t, n)
    weight[:, :2] = math.exp(-0.5)
    next_values = torch.cat([values[1:], last[None]])
    next_values[5, 0] = stale.values[6, 0]
    v, q = vtrace(
        stale.rewards, values, next_values, stale.terminated, stale.truncated, -shift, gamma=0.99, rho_bar=1, c_bar=1
    )
    torch.testing.assert_close(targets, v, rtol=0, atol=1e-5)
    torch.testing.assert_close(adv, weight * (q - values), rtol=0, atol=1e-5)
    assert stats["mean_weight"] == pytest.approx(float(weight[stale.valid].mean()), abs=1e-5)
    rollout.close()


@pytest.mark.parametrize("max_staleness", [0, 1, 3])
def test_the_staleness_filter_keeps_fragments_exactly_max_staleness_old_and_drops_older(max_staleness: int) -> None:
    """Async mode: a fragment acted with weights k versions old is kept for k = 0 … K (counted as staleness k) and
    dropped for k > K; the boundary k = K is kept, as the docs say ("more than K versions old are dropped")."""
    version = 10
    kept = [staleness_kept(version, version - k, max_staleness) for k in range(max_staleness + 1)]
    assert kept == list(range(max_staleness + 1))
    assert staleness_kept(version, version - max_staleness - 1, max_staleness) is None
    assert staleness_kept(version, 0, max_staleness) is None


def test_the_runners_summary_line_names_failures_restarts_timeouts_and_dropped_fragments() -> None:
    """A run that lost runners never ends with a clean run's summary line."""
    cfg = PPOConfig(env="CartPole-v1", num_envs=4, num_steps=8, num_runners=2, vectorization="sync")
    policy = build_policy(cfg)
    flat = FlatParameters(policy)
    group = InProcessGroup(cfg, lambda: flat.param.detach().numpy(), np.random.default_rng(0), torch.device("cpu"), 0)
    group.collect()
    assert group.health_line() == "runners: 2 × 2 envs, no failures, timeouts, restarts or dropped fragments"
    group.failures, group.timed_out, group.restarts, group.lost_fragments, group.dropped_stale = 2, 1, 3, 3, 4
    group.last_runners = 1
    assert group.health_line() == (
        "runners: 2 × 2 envs: 2 runner failures, 1 timeout (past sample_timeout_s=None), 3 restarts, 7 fragments "
        "dropped (3 lost, 4 stale); 1 of 2 runners in the last batch"
    )
    group.close()
