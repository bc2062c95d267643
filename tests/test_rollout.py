"""The rollout's NEXT_STEP autoreset boundary: reset steps are invalid, truncation bootstraps from the final obs."""

import gymnasium as gym
import torch

from proxrl.envs import make_vec_env
from proxrl.policies import ActorCritic
from proxrl.rollout import Rollout


def _rollout(env_id, steps):
    venv, _ = make_vec_env(env_id, num_envs=1, seed=0, vectorization="sync")
    policy = ActorCritic(venv.single_observation_space, venv.single_action_space, (8,))
    r = Rollout(venv, policy, steps, torch.device("cpu"))
    obs, _ = venv.reset(seed=0)
    r.start(obs)
    return r, policy


def test_truncation_boundary_final_obs_then_invalid_reset_step():
    r, policy = _rollout("proxrl_test/Counter-v0", 9)  # truncated after 3 steps
    b = r.collect()
    assert b.obs[:, 0, 0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert b.truncated[:, 0].tolist() == [False, False, True, False, False, False, True, False, False]
    assert not b.terminated.any()
    assert b.valid[:, 0].tolist() == [True, True, True, False, True, True, True, False, True]
    assert b.rewards[:, 0].tolist() == [1, 1, 1, 0, 1, 1, 1, 0, 1]  # the reset step's reward is 0
    # next_values at a truncation is V(real final observation [3]), the bootstrap GAE needs
    with torch.no_grad():
        v_final = policy.value(torch.tensor([[3.0]]))
    torch.testing.assert_close(b.next_values[2], v_final, atol=1e-6, rtol=0)
    with torch.no_grad():
        v_last = policy.value(torch.tensor([[1.0]]))
    torch.testing.assert_close(b.values[-1], v_last, atol=1e-6, rtol=0)  # last row: V after the last step
    episodes = r.episodes.drain()
    assert episodes == ([3.0, 3.0], [3, 3])


def test_termination_boundary_and_state_carries_across_collect_calls():
    r, _ = _rollout("proxrl_test/CounterTerm-v0", 2)  # terminates after 2 steps
    first, second = r.collect(), None
    assert first.terminated[:, 0].tolist() == [False, True]
    second = r.collect()
    # the next call starts with the reset step of the episode that ended in the previous call
    assert second.valid[:, 0].tolist() == [False, True]
    assert second.obs[:, 0, 0].tolist() == [2, 0]


def test_native_vector_env_used_where_available():
    venv, _ = make_vec_env("CartPole-v1", num_envs=4, seed=0)
    assert "CartPoleVectorEnv" in str(venv.unwrapped.__class__)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
