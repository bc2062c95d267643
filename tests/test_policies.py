"""The numpy acting path computes what the torch policy computes."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from proxrl.policies import ActorCritic, NumpyActing

OBS = spaces.Box(-1, 1, (5,), np.float32)


@pytest.mark.parametrize("action_space", [spaces.Discrete(4), spaces.MultiDiscrete([3, 2]),
                                          spaces.Box(-1, 1, (2,), np.float32)], ids=["discrete", "multi", "box"])
@pytest.mark.parametrize("shared", [False, True])
def test_numpy_acting_matches_torch_log_probs_and_values(action_space, shared):
    torch.manual_seed(0)
    policy = ActorCritic(OBS, action_space, (32, 32), shared_trunk=shared, log_std_init=-0.3)
    with torch.no_grad():  # move off the init so the heads are not ~0
        for p in policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
    acting = NumpyActing(policy, np.random.default_rng(0))
    obs = np.random.default_rng(1).uniform(-1, 1, (64, 5)).astype(np.float32)
    actions, logp, value = acting.act(obs)
    t_logp, _, t_value = policy.evaluate(torch.from_numpy(obs), torch.as_tensor(actions))
    np.testing.assert_allclose(logp, t_logp.detach().numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(value, t_value.detach().numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(acting.value(obs), value, atol=1e-6, rtol=0)
    if not isinstance(action_space, spaces.Box):  # Gaussian samples are clipped only when sent to the env
        assert action_space.contains(np.asarray(actions[0], dtype=action_space.dtype))


def test_numpy_acting_sees_in_place_parameter_updates():
    policy = ActorCritic(OBS, spaces.Discrete(2), (8,))
    acting = NumpyActing(policy, np.random.default_rng(0))
    obs = np.zeros((3, 5), dtype=np.float32)
    with torch.no_grad():
        policy.critic_head[0].bias.add_(5.0)
    np.testing.assert_allclose(acting.act(obs)[2], policy.value(torch.from_numpy(obs)).detach().numpy(), atol=1e-6)


def test_numpy_sampling_frequencies_match_probabilities():
    policy = ActorCritic(OBS, spaces.Discrete(3), (8,))
    with torch.no_grad():
        policy.actor_head[0].weight.zero_()
        policy.actor_head[0].bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
    actions, _, _ = NumpyActing(policy, np.random.default_rng(0)).act(np.zeros((30000, 5), np.float32))
    freq = np.bincount(actions, minlength=3) / 30000
    np.testing.assert_allclose(freq, torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0).numpy(), atol=0.01)


def test_unsupported_activation_falls_back_to_torch():
    assert not NumpyActing.supports(ActorCritic(OBS, spaces.Discrete(2), (8,), activation="elu"))
    assert not NumpyActing.supports(ActorCritic(spaces.Discrete(4), spaces.Discrete(2), (8,)))
