"""GRPO's group-relative advantage: hand-worked values, and exactly zero for a group of equal rewards."""

import pytest
import torch

from proxrl.advantages import flat_groups, group_relative


@pytest.mark.parametrize("value", [7.3, 1000.1, -0.1, 1e-8])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_equal_rewards_give_exactly_zero_advantage_and_count_as_flat(value, scale):
    # float32: the mean of 8 × 7.3 rounds off 7.3, so r − mean ≠ 0 and the std of ~1e-7 magnifies it
    rewards = torch.tensor([[value] * 8, [0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]])
    adv = group_relative(rewards, scale)
    assert torch.equal(adv[0], torch.zeros(8))
    assert flat_groups(rewards).tolist() == [True, False]


def test_group_relative_hand_worked():
    # each group: mean = its middle reward, unbiased std 1 → Â = r − mean; batch: the std of all six (1.0488)
    rewards = torch.tensor([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    torch.testing.assert_close(
        group_relative(rewards, "group", eps=0.0), torch.tensor([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        group_relative(rewards, "none"), torch.tensor([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]), atol=1e-6, rtol=0
    )
    batch_std = 1.0488088
    torch.testing.assert_close(
        group_relative(rewards, "batch", eps=0.0),
        torch.tensor([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]) / batch_std,
        atol=1e-6,
        rtol=0,
    )
