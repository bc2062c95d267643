"""Acting and evaluation with a trained multi-agent policy: actions for padded observations, the mean team return
over fresh episodes, and a turn-based game against uniformly random legal moves (wins, draws, losses, illegal
moves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .collector import MultiAgentCollector


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
    actions: np.ndarray = (dist.mode() if deterministic else dist.sample()).cpu().numpy()
    return actions


def evaluate(
    trained: Any,
    episodes: int = 10,
    deterministic: bool = True,
    video_dir: str | Path | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """``MultiAgentPPO.evaluate``: over ``episodes`` fresh episodes, every agent playing its policy: the team return
    (Σ over agents; ``mean_return``, ``std_return``), the mean length, each agent's mean return
    (``agent_returns``), and in a zero-sum game (every episode's returns sum to 0) each agent's wins, draws and
    losses (``outcomes``: the sign of its return), since the team return of a zero-sum game is 0 by definition."""
    if video_dir is not None:
        raise ConfigError("video recording is not supported for PettingZoo environments yet")
    if episodes < 1:
        raise ConfigError(f"evaluation needs at least 1 episode, got {episodes}")
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
    per_agent: list[list[float]] = []
    returns: list[float] = []
    lengths: list[int] = []
    while len(returns) < episodes:
        collector.collect()
        per_agent.extend(collector.episodes.agent_returns)
        r, n = collector.episodes.drain()
        returns.extend(r)
        lengths.extend(n)
    collector.close()
    table = np.asarray(per_agent[:episodes])  # [episodes, A]
    names = trained.spec.names
    zero_sum = bool(np.abs(table.sum(1)).max() < 1e-6 and np.abs(table).max() > 0)
    outcomes = {
        name: {
            "win": int((table[:, k] > 0).sum()),
            "draw": int((table[:, k] == 0).sum()),
            "loss": int((table[:, k] < 0).sum()),
        }
        for k, name in enumerate(names)
    }
    return {
        "returns": returns[:episodes],
        "mean_return": float(np.mean(returns[:episodes])),
        "std_return": float(np.std(returns[:episodes])),
        "mean_length": float(np.mean(lengths[:episodes])),
        "agent_returns": {name: float(table[:, k].mean()) for k, name in enumerate(names)},
        "agent_std": {name: float(table[:, k].std()) for k, name in enumerate(names)},
        "zero_sum": zero_sum,
        "outcomes": outcomes if zero_sum else None,
    }


def describe(result: dict[str, Any]) -> list[str]:
    """What an evaluation says to a user, one line each: the team return (or, in a zero-sum game, each agent's
    wins/draws/losses instead), each agent's mean return, the mean episode length."""
    n = len(result["returns"])
    agents = ", ".join(
        f"{name} {mean:.2f} ± {result['agent_std'][name]:.2f}" for name, mean in result["agent_returns"].items()
    )
    if result["zero_sum"]:
        games = "; ".join(
            f"{name} won {o['win']}, drew {o['draw']}, lost {o['loss']}" for name, o in result["outcomes"].items()
        )
        head = f"zero-sum game in self-play ({n} episodes): {games}"
    else:
        head = f"team return (Σ over agents) {result['mean_return']:.2f} ± {result['std_return']:.2f}"
    return [head, f"  return per agent: {agents}", f"  mean length {result['mean_length']:.1f}"]


def describe_evaluation(
    trained: Any,
    episodes: int = 20,
    deterministic: bool = True,
    video_dir: str | Path | None = None,
    seed: int | None = None,
) -> list[str]:
    """``proxrl eval`` of a multi-agent run: its method (ippo, mappo or happo) and :func:`describe`."""
    result = evaluate(trained, episodes, deterministic=deterministic, video_dir=video_dir, seed=seed)
    kind = "deterministic" if deterministic else "stochastic"
    head, *rest = describe(result)
    return [f"{trained.config.method} on {trained.config.env}: {episodes} episodes ({kind}): {head}", *rest]


def summary(trained: Any, eval_episodes: int = 0) -> list[str]:
    """What the CLI prints when a multi-agent run ends: the counters, and a fresh evaluation (:func:`describe`)."""
    lines = [trained.progress.done_line("mean team return", digits=2), *trained.envs.runner_lines()]
    if eval_episodes > 0:
        head, *rest = describe(evaluate(trained, eval_episodes))
        lines += [f"evaluation ({eval_episodes} episodes, deterministic): {head}", *rest]
    return lines


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
