import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
import toy_envs  # noqa: E402,F401  registers proxrl_test/* envs

torch.set_num_threads(1)


@pytest.fixture
def tiny_ppo():
    """Keyword overrides for a PPO run of a few small iterations."""
    return dict(num_envs=2, num_steps=16, num_minibatches=2, num_epochs=2, tensorboard=False, hidden_sizes=(16,))
