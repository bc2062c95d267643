"""Acting and evaluation with a trained multi-agent policy: actions for padded observations, the mean team return
over fresh episodes, and a turn-based game against uniformly random legal moves (wins, draws, losses, illegal
moves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError
from .collectors import MultiAgentCollector


@torch.no_grad()
def predict(
    trained: Any,
    obs: np.ndarray,
    state: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    deterministic: bool = True,
) -> np.ndarray:
    """``MultiAgentPPO.predict``: actions ``[B, A]`` for padded observations ``[B, A, D]`` (legal ones where
    ``masks`` ``[B, A, n]`` is given): the mode of π, or a sample (``state`` is not needed to act)."""
    o = torch.as_tensor(obs, dtype=torch.float32, device=trained.device)
    m = None if masks is None else torch.as_tensor(masks, device=trained.device)
    dist = trained.policy.distribution(o, m)
    return (dist.mode() if deterministic else dist.sample()).cpu().numpy()


def evaluate(
    trained: Any,
    episodes: int = 10,
    deterministic: bool = True,
    video_dir: str | Path | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """``MultiAgentPPO.evaluate``: the mean team return (Σ over agents) over ``episodes`` fresh episodes, every
    agent playing its policy."""
    if video_dir is not None:
        raise ConfigError("video recording is not supported for PettingZoo environments yet")
    trained.policy.eval()
    collector = MultiAgentCollector(
        trained.kind,
        trained.make_env,
        trained.spec,
        trained.policy,
        1,
        1,
        trained.config.seed + 10_000 if seed is None else seed,
        trained.device,
        deterministic=deterministic,
    )
    returns: list[float] = []
    while len(returns) < episodes:
        collector.collect()
        returns.extend(collector.episodes.drain()[0])
    collector.close()
    returns = returns[:episodes]
    return {
        "returns": returns,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float("nan"),
    }


def evaluate_against_random(trained: Any, games: int = 200, seat: int = 0, seed: int = 0) -> dict[str, float]:
    """Play an AEC game with agent ``seat`` choosing the mode of its policy (legal moves only) and every other
    agent a uniformly random legal move; returns win / draw / loss rates of ``seat`` and illegal-move count."""
    rng = np.random.default_rng(seed)
    env = trained.make_env()
    names = trained.spec.names
    wins = draws = losses = illegal = 0
    for g in range(games):
        env.reset(seed=seed + g)
        final = 0.0
        for name in env.agent_iter():
            obs, reward, term, trunc, _ = env.last()
            if term or trunc:
                final = float(reward) if name == names[seat] else final
                env.step(None)
                continue
            flat, mask = obs["observation"].astype(np.float32).reshape(-1), np.asarray(obs["action_mask"], bool)
            if name == names[seat]:
                x = np.zeros((1, len(names), max(trained.spec.obs_dims)), np.float32)
                x[0, seat, : flat.size] = flat
                m = np.ones((1, len(names), mask.size), bool)
                m[0, seat] = mask
                action = int(trained.predict(x, masks=m)[0, seat])
                illegal += int(not mask[action])
            else:
                action = int(rng.choice(np.flatnonzero(mask)))
            env.step(action)
        wins, draws, losses = wins + (final > 0), draws + (final == 0), losses + (final < 0)
    env.close()
    return {"win": wins / games, "draw": draws / games, "loss": losses / games, "illegal": illegal}
