"""Multi-agent PPO: GAE with a mask, the PettingZoo adapters, IPPO/MAPPO/HAPPO smoke, persistence and errors."""

import numpy as np
import pytest
import torch

from proxrl import ConfigError, MultiAgentPPO
from proxrl.advantages import gae
from proxrl.marl.batch import next_values
from proxrl.marl.evaluation import evaluate_against_random
from proxrl.cli import main

TINY = dict(num_envs=2, num_steps=8, tensorboard=False, hidden_sizes=(16,), num_epochs=2)


def _rollout(t=6, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    rewards, values = torch.randn(t, n, generator=g), torch.randn(t, n, generator=g)
    boot, last = torch.randn(t, n, generator=g), torch.randn(n, generator=g)
    terminated = torch.rand(t, n, generator=g) < 0.2
    truncated = (torch.rand(t, n, generator=g) < 0.2) & ~terminated
    return rewards, values, boot, last, terminated, truncated


def test_next_values_with_every_row_alive_are_the_next_rows_values_or_the_truncation_bootstrap():
    rewards, values, boot, last, terminated, truncated = _rollout()
    expected = torch.where(truncated, boot, torch.cat([values[1:], last[None]]))
    got = next_values(values.numpy(), np.ones((6, 3), bool), truncated.numpy(), boot.numpy(), last.numpy())
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=0, atol=0)


def test_gae_with_a_mask_skips_the_rows_where_the_agent_did_not_act():
    rewards, values, boot, last, terminated, truncated = _rollout(t=5, n=1, seed=3)
    dense_next = torch.where(truncated, boot, torch.cat([values[1:], last[None]]))
    dense = gae(rewards, values, dense_next, terminated, truncated, gamma=0.9, gae_lambda=0.8)
    assert torch.equal(
        gae(
            rewards,
            values,
            dense_next,
            terminated,
            truncated,
            gamma=0.9,
            gae_lambda=0.8,
            mask=torch.ones(5, 1, dtype=torch.bool),
        ),
        dense,
    )
    # interleave rows in which this agent does not act (another player's turn): they must change nothing
    alive = torch.tensor([True, False, True, False, True, False, True, False, True, False])[:, None]

    def spread_out(x, fill=0.0):
        out = torch.full((10, 1), fill, dtype=x.dtype)
        out[alive] = x[:, 0]
        return out

    values_spread = spread_out(values, 7.0)  # V of a row where the agent did not act must not be read
    next_spread = next_values(
        values_spread.numpy(),
        alive.numpy(),
        spread_out(truncated, False).numpy(),
        spread_out(boot).numpy(),
        last.numpy(),
    )
    torch.testing.assert_close(torch.from_numpy(next_spread)[alive], dense_next[:, 0], rtol=0, atol=0)
    got = gae(
        spread_out(rewards),
        values_spread,
        torch.from_numpy(next_spread),
        spread_out(terminated, False),
        spread_out(truncated, False),
        gamma=0.9,
        gae_lambda=0.8,
        mask=alive,
    )
    torch.testing.assert_close(got[alive], dense[:, 0])
    assert torch.all(got[~alive] == 0)


@pytest.mark.parametrize("method", ["ippo", "mappo", "happo"])
@pytest.mark.parametrize(
    "env,kwargs",
    [
        ("proxrl.envs.matrix_games", {"game": "climbing"}),
        ("pettingzoo.classic.tictactoe_v3", {}),
        ("mpe2.simple_spread_v3", {"N": 2, "max_cycles": 5}),
    ],
)
def test_two_iterations_change_every_trainable_parameter(method, env, kwargs):
    agent = MultiAgentPPO(env, method=method, env_kwargs=kwargs, **TINY)
    before = {k: v.clone() for k, v in agent.policy.named_parameters()}
    agent.learn(2 * 2 * 8)
    assert agent.progress.iteration == 2
    for name, p in agent.policy.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"


def test_shared_actor_with_agent_id_and_value_norm_run():
    agent = MultiAgentPPO(
        "mpe2.simple_spread_v3",
        method="ippo",
        share_actor=True,
        agent_id=True,
        value_norm=True,
        env_kwargs={"N": 2, "max_cycles": 5},
        **TINY,
    )
    agent.learn(32)
    assert len(agent.policy.actors) == 1 and agent.value_norm.count > 1


def test_aec_rewards_reach_the_acting_players_and_masks_hold():
    agent = MultiAgentPPO(
        "pettingzoo.classic.tictactoe_v3",
        method="ippo",
        num_envs=4,
        num_steps=64,
        tensorboard=False,
        hidden_sizes=(16,),
    )
    collector = agent.start_envs()
    batch = collector.collect()
    # one player acts per row; the two carry rows (empty in a first rollout) come first, and the last moves of
    # games still going are held back for the next rollout (their rewards are still to come)
    assert torch.all(batch.alive[:2].sum(-1) == 0) and torch.all(batch.alive[2:-2].sum(-1) == 1)
    assert torch.all(batch.alive.sum(-1) <= 1)
    legal = batch.masks.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    assert torch.all(legal[batch.alive]), "every action taken was legal"
    # tic-tac-toe pays ±1 only at the end: a reward sits on a player's final move, which is marked terminated,
    # and each game's winner's +1 is matched by the loser's −1 on the loser's own last move
    assert torch.all(batch.rewards[~batch.alive] == 0)
    nonzero = batch.rewards != 0
    assert nonzero.any() and torch.all(batch.terminated[nonzero])
    assert set(batch.rewards[nonzero].tolist()) <= {-1.0, 1.0}
    assert batch.terminated.sum() >= 8
    returns, _ = collector.episodes.drain()
    assert all(r == 0 for r in returns)  # team return Σ_i r_i of a zero-sum game


def test_save_load_resume_and_cli(tmp_path, capsys):
    agent = MultiAgentPPO("proxrl.envs.matrix_games", method="happo", run_dir=tmp_path / "run", progress=False, **TINY)
    agent.learn(64)
    loaded = MultiAgentPPO.load(tmp_path / "run")
    for a, b in zip(agent.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    assert loaded.global_step == 64
    # a version-2 checkpoint: its config held `vectorization` (accepted and ignored then), and an acting_rng
    from proxrl import checkpoint

    state = agent.state_dict()
    state.update(format_version=2, config=state["config"] + "vectorization: auto\n", acting_rng="{}")
    checkpoint.atomic_save(state, tmp_path / "v2.pt")
    old = MultiAgentPPO.load(tmp_path / "v2.pt")
    assert old.global_step == 64 and all(
        torch.equal(a, b) for a, b in zip(agent.policy.parameters(), old.policy.parameters(), strict=True)
    )
    assert (
        main(
            [
                "train",
                "mappo",
                "--env",
                "mpe2.simple_spread_v3",
                "--env-kwargs",
                "N=2,max_cycles=5",
                "--total-steps",
                "32",
                "--set",
                "num_envs=2",
                "--set",
                "num_steps=8",
                "--run-dir",
                str(tmp_path / "cli"),
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["train", "--resume", str(tmp_path / "cli"), "--total-steps", "16", "--quiet"]) == 0
    assert main(["eval", str(tmp_path / "cli"), "--episodes", "2"]) == 0


def test_a_module_that_is_not_a_pettingzoo_env_is_a_clear_error():
    with pytest.raises(ConfigError, match="not a PettingZoo environment"):
        MultiAgentPPO("json", **TINY)
    with pytest.raises(ConfigError, match="cannot import"):
        MultiAgentPPO("no_such_module_xyz", **TINY)
    with pytest.raises(ConfigError, match="share_actor"):
        MultiAgentPPO("proxrl.envs.matrix_games", method="happo", share_actor=True, **TINY)


def test_matrix_games_pass_pettingzoos_parallel_api_test():
    from pettingzoo.test import parallel_api_test

    from proxrl.envs.matrix_games import parallel_env

    for game in ("penalty", "climbing"):
        parallel_api_test(parallel_env(game), num_cycles=10)


def test_evaluate_against_random_never_plays_illegal_moves():
    agent = MultiAgentPPO("pettingzoo.classic.tictactoe_v3", method="ippo", **TINY)
    result = evaluate_against_random(agent, games=20, seat=0)
    assert result["illegal"] == 0 and result["win"] + result["draw"] + result["loss"] == pytest.approx(1.0)


def test_toy_env_passes_the_parallel_api_test():
    from pettingzoo.test import parallel_api_test

    import toy_pettingzoo

    parallel_api_test(toy_pettingzoo.parallel_env(), num_cycles=20)


@pytest.mark.parametrize("box", [False, True])
@pytest.mark.parametrize("method", ["ippo", "mappo", "happo"])
def test_heterogeneous_agents_that_leave_early_are_masked(method, box):
    agent = MultiAgentPPO(
        "toy_pettingzoo", method=method, env_kwargs={"box": box}, gamma=0.5, gae_lambda=1.0, **{**TINY, "num_steps": 10}
    )
    batch = agent.start_envs().collect()
    early, late = batch.alive[:, 0, 0], batch.alive[:, 0, 1]
    # episodes of 5 steps: `early` acts in steps 1–2 of each, `late` in all 5
    assert early.tolist() == [True, True, False, False, False] * 2 and late.all()
    assert batch.terminated[1, 0, 0] and batch.truncated[4, 0, 1] and not batch.terminated[:, 0, 1].any()
    adv, targets = agent._advantages(batch)
    assert torch.all(adv[~batch.alive] == 0)
    if method == "ippo":  # per-agent targets: early's return is 1 + γ·1 at its first step, 1 at its last
        torch.testing.assert_close(targets[:2, 0, 0], torch.tensor([1.5, 1.0]))
    agent.learn(2 * 2 * 10)
    assert agent.progress.iteration == 2


def test_heterogeneous_observation_widths_from_mpe():
    agent = MultiAgentPPO("mpe2.simple_adversary_v3", method="ippo", env_kwargs={"N": 2, "max_cycles": 5}, **TINY)
    assert agent.spec.obs_dims == [8, 10, 10]
    agent.learn(32)


def test_tictactoe_rollout_marks_a_team_episode_end_for_every_game_that_ends():
    # review finding: 2 copies × 40 turns gave 22 agent episode ends and no team end (joint GAE ran across games)
    agent = MultiAgentPPO(
        "pettingzoo.classic.tictactoe_v3",
        method="mappo",
        num_envs=2,
        num_steps=40,
        hidden_sizes=(16,),
        tensorboard=False,
        progress=False,
    )
    b = agent.start_envs().collect()
    games = int(b.team_terminated.sum())
    assert games >= 6
    assert int(b.terminated.sum()) == 2 * games  # both players' last moves end with each game
    assert not b.team_truncated.any()
