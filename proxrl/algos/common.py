"""Plain helpers every algorithm's trainer uses: its start (:func:`begin`), per-step stats, minibatches, evaluation,
finiteness checks. Seeding and RNG streams live in ``proxrl.seeding``, devices and threads in ``proxrl.devices``."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from ..devices import limit_threads
from ..envs import make_eval_env
from ..errors import NonFiniteError
from ..policies import ActorCritic
from ..run import Progress
from ..seeding import seed_everything


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
    max_steps: int | None = None,
    on_episode: Callable[[int, float, int, bool], None] | None = None,
    obs_keys: tuple[str, ...] | None = None,
    hide_obs: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` episodes in a fresh env; returns per-episode returns and lengths (agent steps) and their
    mean/std, and how many episodes ``max_steps`` cut short (``capped``). ``on_episode(index, return, length,
    capped)`` is called as each one ends (the CLI's progress lines).

    With ``video_dir``, every episode is recorded with gymnasium's ``RecordVideo`` (needs the ``video`` extra).
    """
    import gymnasium as gym

    assert isinstance(policy, ActorCritic)  # what every env trainer builds (runners.runner.build_policy)
    device = device or torch.device("cpu")
    render_mode = "rgb_array" if video_dir else None
    e = make_eval_env(env, env_kwargs, obs_stats, render_mode, obs_keys=obs_keys, hide_obs=hide_obs)
    if video_dir is not None:
        e = gym.wrappers.RecordVideo(e, str(video_dir), episode_trigger=lambda _: True, disable_logger=True)
    returns, lengths, capped = [], [], 0
    try:
        for i in range(episodes):
            total, n, cut = play_episode(policy, e, seed + i, deterministic, device, max_steps)
            returns.append(total)
            lengths.append(n)
            capped += int(cut)
            if on_episode is not None:
                on_episode(i, total, n, cut)
    finally:
        e.close()
    return {
        "returns": returns,
        "lengths": lengths,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
        "capped": capped,
    }


def play_episode(
    policy: ActorCritic, env: Any, seed: int, deterministic: bool, device: torch.device, max_steps: int | None
) -> tuple[float, int, bool]:
    """One episode of ``policy`` in ``env`` from ``reset(seed=seed)``: (return, length in agent steps, whether
    ``max_steps`` cut it short)."""
    obs, _ = env.reset(seed=seed)
    done, cut, total, n = False, False, 0.0, 0
    state = policy.initial_state(1, device) if policy.core is not None else None
    while not done:
        x = torch.as_tensor(np.asarray(obs), device=device).unsqueeze(0)
        if state is None:
            action = policy.env_actions(x, deterministic)[0]
        else:  # a recurrent policy carries its state through the episode
            actions, state = policy.env_actions_recurrent(x, state, deterministic)
            action = actions[0]
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        n += 1
        cut = max_steps is not None and n >= max_steps and not (terminated or truncated)
        done = terminated or truncated or cut
    return total, n, cut


def check_gradient(step: int, norm: Tensor, name: str = "gradient") -> None:
    """Raise :class:`NonFiniteError` if the global gradient norm is NaN or infinite (before the optimiser step, so
    the parameters stay as they were)."""
    if not math.isfinite(norm.item()):
        raise NonFiniteError(
            f"non-finite {name} at env step {step} (the loss was finite): training stopped; the "
            "last good checkpoint is kept. Lower lr or max_grad_norm, or check the network's inputs."
        )
