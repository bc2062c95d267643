"""Atari through ale-py: the standard preprocessing for training (episodic life, sign-clipped rewards, 4 stacked
84×84 grayscale uint8 frames, raw whole-game scores in the logs) and the real game score in evaluation."""

import numpy as np
import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from proxrl import PPO  # noqa: E402
from proxrl.envs import make_eval_env, make_vec_env  # noqa: E402

GAME = "ALE/SpaceInvaders-v5"  # an alien is worth 5 to 30 points: clipped and raw rewards differ


def test_training_envs_clip_rewards_end_episodes_at_a_lost_life_and_log_the_raw_game_score():
    venv, _ = make_vec_env(GAME, 1, seed=0)
    assert venv.single_observation_space.shape == (4, 84, 84)
    assert venv.single_observation_space.dtype == np.uint8
    rng = np.random.default_rng(0)
    clipped, life_ends, game, steps = 0.0, 0, None, 0
    while steps < 20_000:
        obs, reward, terminated, truncated, info = venv.step(rng.integers(venv.single_action_space.n, size=1))
        steps += 1
        assert obs.dtype == np.uint8 and reward[0] in (-1.0, 0.0, 1.0)
        clipped += reward[0]
        life_ends += int(terminated[0])
        if info.get("_episode", np.zeros(1, bool))[0]:
            game, length = float(info["episode"]["r"][0]), int(info["episode"]["l"][0])
            break
    venv.close()
    assert game is not None, "no game ended"
    assert life_ends >= 2  # a lost life ended a training episode before the game ended (seed 0: at steps 771, 801)
    assert game > clipped > 0  # the logged return is the game's score, not the sum of clipped rewards
    # The logged length is in agent steps (4 frames each), not frames (3,200 here): the vector env's steps, plus the
    # few the wrappers take at a reset (FIRE and action 2; a no-op after a lost life). Seed 0: 806 for 802.
    assert steps <= length <= steps + 3 * (life_ends + 1), (length, steps, life_ends)


def test_an_atari_evaluation_is_capped_at_27000_agent_steps_by_default_and_says_so(capsys):
    agent = PPO(GAME, num_envs=1, num_steps=8, num_minibatches=1, hidden_sizes=(), progress=True, tensorboard=False)
    assert agent.eval_step_cap() == 27_000  # 108,000 frames: the ALE's own limit, in agent steps
    capped = PPO(GAME, num_envs=1, num_steps=8, hidden_sizes=(), eval_max_steps=40, progress=True, tensorboard=False)
    r = capped.evaluate(2)
    assert r["lengths"] == [40, 40] and r["capped"] == 2
    assert "evaluation episode 2/2: return" in capsys.readouterr().err
    assert "2 cut at the cap of 40 steps" in capped.summary(1)[-1] + capped.describe_evaluation(2)[0]


def test_evaluation_reports_the_games_real_score():
    env = make_eval_env(GAME)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    rewards = []
    for _ in range(3_000):
        _, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        rewards.append(reward)
        if terminated or truncated:
            break
    env.close()
    assert max(rewards) > 1  # unclipped
    assert terminated  # a lost life does not end an evaluation episode: only the game's end does


def test_the_atari_preset_picks_the_cnn_and_trains():
    agent = PPO("ALE/Breakout-v5", num_envs=2, num_steps=32, num_minibatches=2, hidden_sizes=(), progress=False)
    assert type(agent.policy.encoder).__name__ == "NatureCNN"
    assert agent.policy.encoder.convs[0].in_channels == 4
    agent.learn(64)
    assert agent.envs.rollout.batch.obs.dtype.itemsize == 1
