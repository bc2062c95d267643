"""FlatParameters: the flat views give the same gradients, clip and Adam steps as the per-tensor originals."""

import copy

import gymnasium as gym
import torch
from torch import nn

from proxrl.optim import FlatParameters, make_adam
from proxrl.policies import ActorCritic


def _policy() -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (2,)), (8, 8))


def _loss(policy: ActorCritic, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    logp, entropy, value = policy.evaluate(obs, actions)
    return -(logp * 3).mean() + value.pow(2).mean() - 0.1 * entropy.mean()


def test_flat_parameters_match_per_tensor_training():
    reference, flat_policy = _policy(), _policy()
    flat = FlatParameters(flat_policy)
    assert flat.param.numel() == sum(p.numel() for p in reference.parameters())
    ref_opt = torch.optim.Adam(reference.parameters(), lr=1e-2, eps=1e-5)
    flat_opt = make_adam([flat.param], lr=1e-2, eps=1e-5)
    gen = torch.Generator().manual_seed(1)
    for step in range(5):
        obs, actions = torch.randn(16, 3, generator=gen), torch.randn(16, 2, generator=gen)
        ref_opt.zero_grad()
        _loss(reference, obs, actions).backward()
        ref_norm = nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
        ref_opt.step()
        if step == 2:  # someone else's zero_grad(set_to_none=True) must not silently stop learning
            flat_opt.zero_grad(set_to_none=True)
            flat_policy.zero_grad(set_to_none=True)
        flat.zero_grad()
        _loss(flat_policy, obs, actions).backward()
        for p in flat.params:  # gradients were accumulated into the flat buffer, not into fresh tensors
            assert p.grad.untyped_storage().data_ptr() == flat.param.grad.untyped_storage().data_ptr()
        torch.testing.assert_close(flat.clip_grad_norm_(0.5), ref_norm)
        flat_opt.step()
        for (name, a), b in zip(reference.named_parameters(), flat_policy.parameters(), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)


def test_flat_parameters_keep_the_state_dict_and_load_in_place():
    policy, other = _policy(), copy.deepcopy(_policy())
    keys = list(policy.state_dict())
    flat = FlatParameters(policy)
    assert list(policy.state_dict()) == keys
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    policy.load_state_dict(other.state_dict())  # copies into the views: the flat tensor sees the new weights
    torch.testing.assert_close(flat.param.detach(), torch.cat([p.detach().reshape(-1) for p in other.parameters()]))


def test_clip_leaves_small_gradients_alone():
    flat = FlatParameters(_policy())
    flat.param.grad.fill_(1e-4)
    norm = flat.clip_grad_norm_(10.0)
    assert norm.item() < 10.0 and torch.all(flat.param.grad == 1e-4)
