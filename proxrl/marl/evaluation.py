"""Evaluating a trained multi-agent policy against opponents: a turn-based game against uniformly random legal
moves (wins, draws, losses, illegal moves)."""

from __future__ import annotations

from typing import Any

import numpy as np


def evaluate_against_random(trained: Any, games: int = 200, seat: int = 0,
                            seed: int = 0) -> dict[str, float]:
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

