"""The runner group's assembly, without Ray: N runners × M envs give the columns, episodes and acting stream of one
local rollout over N·M envs, bit for bit (sync vectorisation, numpy acting, M ≥ 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from proxrl.algos.ppo import PPOConfig
from proxrl.envs import make_vec_env
from proxrl.fast.flat_adam import FlatParameters
from proxrl.rollout import Batch, Rollout
from proxrl.runners.group import InProcessGroup
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
