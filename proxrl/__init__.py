"""proxrl: the policy-gradient family in PyTorch, each method a short loop over shared, tested equations."""

from typing import Any

from .algos.grpo import GRPO
from .algos.grpo_config import GRPOConfig
from .algos.multiagent import MultiAgentPPO, MultiAgentPPOConfig
from .algos.offpolicy_pg import OffPolicyPG, OffPolicyPGConfig
from .algos.pg import PG, REINFORCE, PGConfig
from .algos.ppo import PPO, PPOConfig
from .checkpoint import CheckpointError
from .config import ConfigError
from .trl import GRPOTrainer

__all__ = [
    "GRPO",
    "GRPOConfig",
    "GRPOTrainer",
    "MultiAgentPPO",
    "MultiAgentPPOConfig",
    "OffPolicyPG",
    "OffPolicyPGConfig",
    "PG",
    "PGConfig",
    "PPO",
    "PPOConfig",
    "REINFORCE",
    "ConfigError",
    "CheckpointError",
    "load",
]
__version__ = "0.1.0"

AnyTrainer = PG | OffPolicyPG | PPO | MultiAgentPPO | GRPO
ALGORITHMS: dict[str, type[AnyTrainer]] = {
    "reinforce": PG,
    "pg": PG,
    "offpolicy_pg": OffPolicyPG,
    "ppo": PPO,
    "ippo": MultiAgentPPO,
    "mappo": MultiAgentPPO,
    "happo": MultiAgentPPO,
    "multiagent_ppo": MultiAgentPPO,
    "grpo": GRPO,
}
# CLI names that are another algorithm with some settings fixed: `proxrl train reinforce` is `pg` with G as Â
ALIASES: dict[str, dict[str, object]] = {
    "reinforce": {"advantage": "return"},
    "ippo": {"method": "ippo"},
    "mappo": {"method": "mappo"},
    "happo": {"method": "happo"},
}


def load(path: str, **overrides: Any) -> AnyTrainer:
    """Load any proxrl checkpoint (file, folder checkpoint or run directory), dispatching on the method stored in
    it."""
    from pathlib import Path

    from . import checkpoint

    if not Path(path).exists():
        raise CheckpointError(f"no run directory or checkpoint file at {path}")
    found = checkpoint.load_newest(path)  # a run directory's newest valid checkpoint, saying what it skipped
    algo = found.state.get("algo")
    if algo not in ALGORITHMS:
        raise CheckpointError(f"{path} holds a '{algo}' checkpoint; this proxrl knows {sorted(ALGORITHMS)}")
    return ALGORITHMS[algo].load(found.path, **overrides)
