"""proxrl: the policy-gradient family in PyTorch, each method a short loop over shared, tested equations."""

from .algos.ppo import PPO, PPOConfig
from .checkpoint import CheckpointError
from .config import ConfigError

__all__ = ["PPO", "PPOConfig", "ConfigError", "CheckpointError", "load"]
__version__ = "0.1.0"

ALGORITHMS = {"ppo": PPO}


def load(path: str, **overrides: object) -> PPO:
    """Load any proxrl checkpoint (file or run directory), dispatching on the method stored in it."""
    from pathlib import Path

    from . import checkpoint

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"no run directory or checkpoint file at {path}")
    state = checkpoint.load(checkpoint.latest(p) if p.is_dir() else p)
    algo = state.get("algo")
    if algo not in ALGORITHMS:
        raise CheckpointError(f"{path} holds a '{algo}' checkpoint; this proxrl knows {sorted(ALGORITHMS)}")
    return ALGORITHMS[algo].load(p, **overrides)
