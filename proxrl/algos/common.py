"""Plain helpers every algorithm's trainer uses: seeding, devices, RNG state, evaluation, finiteness checks."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor, nn

from ..envs import make_eval_env
from ..errors import NonFiniteError
from ..run import Progress


class Starting(Protocol):
    """What :func:`begin` sets on a trainer."""

    config: Any
    run_dir: Path | None
    show_progress: bool | None
    progress: Progress


def begin(trainer: Starting, config: Any, run_dir: str | Path | None, progress: bool | None) -> None:
    """What every trainer does first: keep its config, run directory and progress-bar choice, seed every RNG, set
    torch's threads, and start with zero counters."""
    trainer.config = config
    trainer.run_dir = Path(run_dir) if run_dir is not None else None
    trainer.show_progress = progress
    seed_everything(config.seed)
    limit_threads(config.torch_threads)
    trainer.progress = Progress()


def limit_threads(n: int) -> None:
    """Run torch and numpy's BLAS (the MLP's numpy acting path) on ``n`` threads each. OpenBLAS otherwise takes
    every core, and two trainings side by side (seeds in a pool, Ray runners, test workers) then spin on each
    other's cores: an MLP run on 2 cores went from 2.8 s to 92 s with a second one beside it."""
    torch.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str, num_params: int, convolutional: bool = False) -> torch.device:
    """``auto``: CUDA only if present and the network is large enough (≥ 1M parameters) or convolutional for a
    GPU to pay off; small MLPs are faster on the CPU, where per-step transfer and launch costs dominate."""
    big = num_params >= 1_000_000 or convolutional
    if name == "cuda" or (name == "auto" and torch.cuda.is_available() and big):
        if not torch.cuda.is_available():
            from ..config import ConfigError

            raise ConfigError("device 'cuda' requested but no CUDA device is available; use device=cpu or auto")
        return torch.device("cuda")
    return torch.device("cpu")


def rng_state() -> dict[str, Any]:
    """RNG states of torch, numpy and python as checkpoint-safe values (tensors, lists, numbers)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": list(random.getstate()[1]) + [random.getstate()[0]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    py = state["python"]
    random.setstate((int(py[-1]), tuple(int(x) for x in py[:-1]), None))


class StatLog:
    """Stats of each minibatch step (detached scalar tensors), averaged at the end of an update with one host
    sync instead of one per step."""

    def __init__(self) -> None:
        self.rows: dict[str, list[Tensor]] = {}

    def add(self, **stats: Tensor) -> None:
        """Record one step's stats."""
        for name, value in stats.items():
            self.rows.setdefault(name, []).append(value.detach())

    def means(self) -> dict[str, float]:
        """Each stat's mean over the recorded steps."""
        values = torch.stack([torch.stack(v).float().mean() for v in self.rows.values()]).tolist()
        return dict(zip(self.rows, values, strict=True))


def minibatches(rows: int, num_minibatches: int, device: torch.device) -> list[Tensor]:
    """A fresh random permutation of ``rows`` indices cut into ``num_minibatches`` (the last may be smaller)."""
    perm = torch.randperm(rows, device=device)
    size = max(1, math.ceil(rows / num_minibatches))
    return [perm[i : i + size] for i in range(0, rows, size)]


def check_finite(step: int, **terms: Tensor) -> None:
    """Raise :class:`NonFiniteError` naming the first term that is NaN or infinite."""
    for name, value in terms.items():
        if not bool(torch.isfinite(value).all()):
            raise NonFiniteError(
                f"non-finite {name} at env step {step}: training stopped; the last good checkpoint "
                "is kept. Lower lr, enable norm_obs/norm_reward, or check the env's observations."
            )


def default_run_dir(algo: str, env: str, seed: int, root: str | Path = "runs") -> Path:
    """``runs/<algo>_<env>_s<seed>_<timestamp>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{algo}_{env.replace(':', '_').replace('/', '_')}_s{seed}_{stamp}"


def explained_variance(pred: Tensor, target: Tensor) -> float:
    """1 − Var[target − pred] / Var[target] (NaN when the target is constant)."""
    var = target.var()
    return float("nan") if var.item() == 0 else float(1 - (target - pred).var() / var)


@torch.no_grad()
def evaluate_policy(
    policy: nn.Module,
    env: str,
    env_kwargs: dict[str, Any],
    obs_stats: dict[str, Any] | None,
    episodes: int,
    deterministic: bool = True,
    seed: int = 10_000,
    video_dir: str | Path | None = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` full episodes in a fresh env; returns per-episode returns and lengths and their mean/std.

    With ``video_dir``, every episode is recorded with gymnasium's ``RecordVideo`` (needs the ``video`` extra).
    """
    import gymnasium as gym

    device = device or torch.device("cpu")
    e = make_eval_env(env, env_kwargs, obs_stats, render_mode="rgb_array" if video_dir else None)
    if video_dir is not None:
        e = gym.wrappers.RecordVideo(e, str(video_dir), episode_trigger=lambda _: True, disable_logger=True)
    returns, lengths = [], []
    try:
        for i in range(episodes):
            obs, _ = e.reset(seed=seed + i)
            done, total, n = False, 0.0, 0
            state = policy.initial_state(1, device) if getattr(policy, "core", None) is not None else None
            while not done:
                x = torch.as_tensor(np.asarray(obs), device=device).unsqueeze(0)
                if state is None:
                    action = policy.env_actions(x, deterministic)[0]
                else:  # a recurrent policy carries its state through the episode
                    actions, state = policy.env_actions_recurrent(x, state, deterministic)
                    action = actions[0]
                obs, reward, terminated, truncated, _ = e.step(action)
                total += float(reward)
                n += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(n)
    finally:
        e.close()
    return {
        "returns": returns,
        "lengths": lengths,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
    }


def check_gradient(step: int, norm: Tensor, name: str = "gradient") -> None:
    """Raise :class:`NonFiniteError` if the global gradient norm is NaN or infinite (before the optimiser step, so
    the parameters stay as they were)."""
    if not math.isfinite(norm.item()):
        raise NonFiniteError(
            f"non-finite {name} at env step {step} (the loss was finite): training stopped; the "
            "last good checkpoint is kept. Lower lr or max_grad_norm, or check the network's inputs."
        )
