"""Reward credit in turn-based (AEC) games across rollout boundaries (issue 35): every reward the env pays a player
reaches one of that player's rows, whatever the rollout length, for IPPO, MAPPO and HAPPO."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

from proxrl import MultiAgentPPO
from proxrl.errors import RunWarning
from proxrl.marl.zero_sum import ZeroSumCheck


def credited_games(collector: Any, n: int, a: int, rollouts: int) -> tuple[list[list[np.ndarray]], list[list[float]]]:
    """Collect ``rollouts`` rollouts; per copy, each finished game's rewards summed per player over its rows (the
    rows read in time order, a game closed by its team end flag), and its team rewards Σ_t Σ_i r; ``n`` copies of
    ``a`` agents."""
    running, team = np.zeros((n, a)), np.zeros(n)
    games: list[list[np.ndarray]] = [[] for _ in range(n)]
    team_sums: list[list[float]] = [[] for _ in range(n)]
    for _ in range(rollouts):
        b = collector.collect()
        assert torch.all(b.rewards[~b.alive] == 0), "a reward on a row where its player did not act"
        ends = (b.team_terminated | b.team_truncated).numpy()
        rewards, team_rewards = b.rewards.double().numpy(), b.team_rewards.double().numpy()
        for t in range(rewards.shape[0]):
            running += rewards[t]
            team += team_rewards[t]
            for i in np.flatnonzero(ends[t]):
                games[i].append(running[i].copy())
                team_sums[i].append(float(team[i]))
                running[i], team[i] = 0.0, 0.0
    return games, team_sums


@pytest.mark.parametrize(
    "game,num_steps,method",
    [
        ("connect_four_v3", 1, "mappo"),
        ("connect_four_v3", 7, "mappo"),
        ("connect_four_v3", 128, "ippo"),
        ("connect_four_v3", 2, "happo"),
        ("tictactoe_v3", 3, "ippo"),
        ("tictactoe_v3", 5, "happo"),
    ],
)
def test_every_reward_a_turn_based_game_pays_reaches_its_players_rows(game, num_steps, method):
    # a game won on a rollout's first move used to leave the loser's −1 on no row (+3 with 128-step rollouts,
    # +15 with 7-step ones over ~138 connect-four games, where a zero-sum game gives exactly 0)
    agent = MultiAgentPPO(
        "credit_games",
        method=method,
        env_kwargs={"game": game},
        num_envs=2,
        num_steps=num_steps,
        hidden_sizes=(8,),
        seed=3,
        tensorboard=False,
        progress=False,
    )
    moves = 320 if game == "connect_four_v3" else 160
    collector = agent.start_envs()
    games, team_sums = credited_games(collector, 2, 2, max(1, moves // num_steps))
    # the logged episode returns, per player, are what the env paid too (nothing counted twice)
    everyone = sorted(tuple(g[name] for name in agent.spec.names) for env in collector.envs for g in env.games)
    logged = sorted(tuple(r) for r in collector.episodes.agent_returns)
    np.testing.assert_allclose(np.array(logged), np.array(everyone), rtol=0, atol=1e-6)
    for i, env in enumerate(collector.envs):
        paid = env.games
        # a game that ended with the last move is closed in the rows before its players' exits reach the env
        assert len(paid) >= 5 and len(games[i]) - len(paid) in (0, 1), (len(games[i]), len(paid))
        expected = np.array([[g[name] for name in agent.spec.names] for g in paid])
        np.testing.assert_allclose(np.array(games[i][: len(paid)]), expected, rtol=0, atol=1e-6)
        assert np.abs(expected).sum() > 0, "some game must be won"
        np.testing.assert_allclose(team_sums[i], 0.0, rtol=0, atol=1e-6)  # zero-sum: the team's rows sum to 0


@pytest.mark.parametrize("method,warns", [("mappo", True), ("happo", True), ("ippo", False)])
def test_a_central_critic_on_a_zero_sum_game_says_so_once(method, warns):
    agent = MultiAgentPPO(
        "pettingzoo.classic.tictactoe_v3",
        method=method,
        num_envs=2,
        num_steps=64,
        hidden_sizes=(8,),
        num_epochs=1,
        tensorboard=False,
        progress=False,
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        agent.learn(3 * 128)
    said = [str(w.message) for w in seen if issubclass(w.category, RunWarning)]
    assert said == ([said[0]] if warns else []), said
    if warns:
        assert "zero-sum" in said[0] and "method=ippo" in said[0] and "\n" not in said[0]


def test_the_zero_sum_check_stays_quiet_on_a_game_with_a_team_reward():
    check = ZeroSumCheck("mappo")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check.observe([[1.0, -1.0]] * 5 + [[0.0, 0.0]] * 5 + [[1.0, 0.5]] + [[1.0, -1.0]] * 20)
    assert not check.active and check.zero_sum_episodes == 5


@pytest.mark.ray
@pytest.mark.parametrize("num_steps", [1, 7])
def test_every_reward_reaches_its_players_rows_on_ray_runners(ray_cluster, num_steps):
    # the Ray multi-agent runner steps the same collector: connect-four pays (+1, −1), (−1, +1) or (0, 0) per game,
    # and a reward lost at a rollout boundary would leave a game at (+1, 0)
    agent = MultiAgentPPO(
        "pettingzoo.classic.connect_four_v3",
        method="mappo",
        num_envs=4,
        num_steps=num_steps,
        hidden_sizes=(8,),
        seed=5,
        tensorboard=False,
        progress=False,
        runners="ray",
        num_runners=2,
    )
    group = agent.start_envs()
    try:
        games, team_sums = credited_games(group, 4, 2, 140 // num_steps)
        logged = [tuple(r) for r in group.episodes.agent_returns]  # the runners' per-agent returns reach the learner
    finally:
        group.close()
        agent.close()
    played = [tuple(g.tolist()) for copy in games for g in copy]
    # (a game closed by its last rows is logged once its players have left, at the next rollout's start)
    assert len(played) - 4 <= len(logged) <= len(played) and set(logged) <= set(played)
    with pytest.warns(RunWarning, match="zero-sum"):  # so MAPPO on Ray runners says so too
        ZeroSumCheck("mappo").observe(logged)
    assert len(played) >= 8 and any(p != (0.0, 0.0) for p in played)
    assert set(played) <= {(1.0, -1.0), (-1.0, 1.0), (0.0, 0.0)}, played
    np.testing.assert_allclose([t for copy in team_sums for t in copy], 0.0, rtol=0, atol=1e-6)


def test_a_held_move_leaves_its_rollout_and_opens_the_next_in_move_order_with_its_reward():
    # turn_game: 4-move games, the mover paid 1 + action at once; 3-row rollouts. Rollout 1: moves 1 (first),
    # 2 (second), 3 (first); moves 2 and 3 await their players' next turns, so they are held: only move 1 stays,
    # bootstrapped (first's column) from V at move 3 and (the team's) from V at move 2. Rollout 2 opens with
    # move 2 then move 3 in its carry rows, each with its action, behaviour log-prob and reward.
    agent = MultiAgentPPO(
        "turn_game",
        method="ippo",
        env_kwargs={"length": 4},
        num_envs=1,
        num_steps=3,
        hidden_sizes=(8,),
        tensorboard=False,
        progress=False,
    )
    first, second = 0, 1
    collector = agent.start_envs()
    one = collector.collect()
    assert one.alive[:, 0].tolist() == [[False, False]] * 2 + [[True, False], [False, False], [False, False]]
    with torch.no_grad():
        v = agent.policy.value(one.obs[:, 0], one.state[:, 0])  # [rows, A]: V_i of each row's observations
    torch.testing.assert_close(one.next_values[2, 0, first], v[4, first], rtol=0, atol=1e-6)  # V_first at move 3
    torch.testing.assert_close(one.team_next_values[2, 0], v[3, 0], rtol=0, atol=1e-6)  # V at move 2
    two = collector.collect()
    assert two.alive[:2, 0].tolist() == [[False, True], [True, False]]  # move 2 (second), then move 3 (first)
    for carry, row, k in [(0, 3, second), (1, 4, first)]:
        torch.testing.assert_close(two.obs[carry, 0], one.obs[row, 0])
        assert two.actions[carry, 0, k] == one.actions[row, 0, k] and two.logp[carry, 0, k] == one.logp[row, 0, k]
        assert two.rewards[carry, 0, k] == 1.0 + float(one.actions[row, 0, k])  # paid on its move, credited here
    # move 4 (second) ends the game: its row is terminated, and so is first's move 3, in the carry row
    assert two.alive[2, 0, second] and two.terminated[2, 0, second] and two.terminated[1, 0, first]
    assert two.team_terminated[2, 0] and not two.team_terminated[:2, 0].any()


def test_a_parallel_games_logged_returns_are_its_rewards_summed_per_episode():
    # recording_games: 3-step episodes, agent i paid payoffs[i][a_0][a_1] each step; 2 copies × 7-row rollouts
    payoffs = [[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 0.5], [2.0, 0.0]]]
    agent = MultiAgentPPO(
        "recording_games",
        method="mappo",
        env_kwargs={"payoffs": payoffs, "length": 3},
        num_envs=2,
        num_steps=7,
        hidden_sizes=(8,),
        tensorboard=False,
        progress=False,
    )
    collector = agent.start_envs()
    batches = [collector.collect() for _ in range(3)]
    rewards = torch.cat([b.rewards for b in batches]).double()  # [21, 2, A]: seven 3-step episodes per copy
    per_episode = rewards.reshape(7, 3, 2, 2).sum(1).transpose(0, 1).reshape(-1, 2)  # [copy·episode, A]
    logged = torch.tensor(collector.episodes.agent_returns, dtype=torch.float64)  # episodes in the order they ended
    order = [i * 7 + e for e in range(7) for i in range(2)]  # (episode e of copy i) ends at the same row for both
    torch.testing.assert_close(logged, per_episode[order], rtol=0, atol=1e-6)
    assert len({tuple(r) for r in logged.tolist()}) > 1  # the actions differ, so do the returns
    torch.testing.assert_close(torch.tensor(collector.episodes.returns, dtype=torch.float64), logged.sum(-1))
