"""proxrl's action distributions agree with torch.distributions; unsupported spaces give a clear error."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import distributions as D

from proxrl.distributions import (
    Categorical,
    DiagGaussian,
    MultiCategorical,
    UnsupportedSpaceError,
    action_param_dim,
    to_env_action,
)
from proxrl.policies import ActorCritic

TOL = dict(atol=1e-5, rtol=1e-5)


def test_categorical_matches_torch():
    g = torch.Generator().manual_seed(0)
    logits, other = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    mine, ref = Categorical(logits), D.Categorical(logits=logits)
    a = torch.randint(0, 4, (6,), generator=g)
    torch.testing.assert_close(mine.log_prob(a), ref.log_prob(a), **TOL)
    torch.testing.assert_close(mine.entropy(), ref.entropy(), **TOL)
    torch.testing.assert_close(mine.kl(Categorical(other)), D.kl_divergence(ref, D.Categorical(logits=other)), **TOL)
    assert torch.equal(mine.mode(), logits.argmax(-1))


def test_diag_gaussian_matches_torch():
    g = torch.Generator().manual_seed(1)
    mean, mean2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    log_std, log_std2 = torch.randn(3, generator=g) * 0.3, torch.randn(3, generator=g) * 0.3
    mine = DiagGaussian(mean, log_std)
    ref = D.Independent(D.Normal(mean, log_std.exp()), 1)
    a = torch.randn(5, 3, generator=g)
    torch.testing.assert_close(mine.log_prob(a), ref.log_prob(a), **TOL)
    torch.testing.assert_close(mine.entropy(), ref.entropy(), **TOL)
    ref2 = D.Independent(D.Normal(mean2, log_std2.exp()), 1)
    torch.testing.assert_close(mine.kl(DiagGaussian(mean2, log_std2)), D.kl_divergence(ref, ref2), **TOL)


def test_multicategorical_is_sum_of_parts():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 5, generator=g)
    mine = MultiCategorical(logits, (3, 2))
    a = torch.stack([torch.randint(0, 3, (4,), generator=g), torch.randint(0, 2, (4,), generator=g)], -1)
    ref = D.Categorical(logits=logits[:, :3]).log_prob(a[:, 0]) + D.Categorical(logits=logits[:, 3:]).log_prob(a[:, 1])
    torch.testing.assert_close(mine.log_prob(a), ref, **TOL)
    assert mine.sample().shape == (4, 2)


def test_sampling_frequencies_match_probabilities():
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, 2.0]]).expand(20000, 3)
    counts = torch.bincount(Categorical(logits).sample(), minlength=3).float() / 20000
    torch.testing.assert_close(counts, torch.softmax(logits[0], -1), atol=0.015, rtol=0)


@pytest.mark.parametrize(
    "space", [spaces.Dict({"a": spaces.Discrete(2)}), spaces.MultiBinary(3), spaces.Box(-1, 1, (2, 2))]
)
def test_unsupported_action_space_is_a_clear_error(space):
    with pytest.raises(UnsupportedSpaceError, match="not supported|must be 1-D"):
        action_param_dim(space)


def test_unsupported_observation_space_names_the_space():
    with pytest.raises(UnsupportedSpaceError, match="observation space Dict"):
        ActorCritic(spaces.Dict({"a": spaces.Discrete(2)}), spaces.Discrete(2))


def test_box_actions_clipped_only_when_sent_to_env():
    space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    out = to_env_action(space, torch.tensor([[3.0, -0.5]]))
    assert out.tolist() == [[1.0, -0.5]]
