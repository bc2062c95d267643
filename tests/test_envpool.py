"""``vectorization: envpool``: the adapter's episode statistics (whole-game raw scores across episodic life,
NEXT_STEP reset rows), training on EnvPool's Atari and classic-control envs, and the one-line errors."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from proxrl import PPO, ConfigError
from proxrl.envs import make_vec_env
from proxrl.envs.envpool_vec import EnvPoolVectorEnv

envpool = pytest.importorskip("envpool")


class ScriptedPool:
    """EnvPool's Atari step outputs, scripted for 2 envs: (clipped reward, raw reward, life lost, game over,
    truncated) per step."""

    def __init__(self, script: list[list[tuple[float, float, bool, bool, bool]]]) -> None:
        self.script = script
        self.elapsed = np.array([5, 0])  # env 0 is mid-game (between lives), env 1 has just restarted

    def reset(self):
        return np.zeros((2, 1)), {"elapsed_step": self.elapsed}

    def step(self, actions):
        rows = self.script.pop(0)
        clipped, raw, life, over, trunc = (np.array(x) for x in zip(*rows, strict=True))
        info = {"reward": raw.astype(np.float32), "terminated": over.astype(np.int32)}
        return np.zeros((2, 1)), clipped.astype(np.float32), life | over, trunc, info


def _adapter(script) -> EnvPoolVectorEnv:
    env = EnvPoolVectorEnv.__new__(EnvPoolVectorEnv)
    env.pool, env.atari, env.num_envs = ScriptedPool(script), True, 2
    env._track(2)
    return env


def test_episodes_are_whole_games_with_raw_scores_and_reset_rows_belong_to_none():
    o = (0.0, 0.0, False, False, False)
    script = [
        [(1.0, 4.0, False, False, False), o],  # env 0 scores 4 (clipped to 1 for training)
        [(0.0, 0.0, True, False, False), o],  # env 0 loses a life: a training episode ends, the game goes on
        [o, (1.0, 7.0, False, False, False)],  # env 0's reset row (EnvPool continues the game); env 1 scores 7
        [(1.0, 1.0, False, True, False), (0.0, 0.0, False, False, True)],  # env 0 game over; env 1 truncated
        [o, o],  # both reset rows
        [(1.0, 1.0, False, True, False), o],  # env 0's next game: one step, 1 point
    ]
    env = _adapter(script)
    infos = [env.step(np.zeros(2))[4] for _ in range(6)]
    assert "episode" not in infos[1]  # a lost life is not a game over
    assert infos[3]["_episode"].tolist() == [True, True]
    assert infos[3]["episode"]["r"].tolist() == [5.0, 7.0]  # raw points: 4 + 1, and 7 (not the clipped 2 and 1)
    assert infos[3]["episode"]["l"].tolist() == [3, 4]  # env 0's reset row after the lost life is not counted
    assert infos[5]["_episode"].tolist() == [True, False] and infos[5]["episode"]["r"][0] == 1.0
    assert infos[5]["episode"]["l"][0] == 1


def test_a_reset_between_lives_keeps_the_games_score():
    """An episodic rollout resets the envs each call; EnvPool restarts only finished games, and so do the totals."""
    env = _adapter(
        [
            [(1.0, 4.0, False, False, False), (1.0, 3.0, False, False, False)],
            [(0.0, 0.0, False, True, False), (0.0, 0.0, False, True, False)],
        ]
    )
    env.step(np.zeros(2))
    env.reset()  # env 0 goes on between lives (elapsed 5), env 1 starts a new game (elapsed 0)
    info = env.step(np.zeros(2))[4]
    assert info["episode"]["r"].tolist() == [4.0, 0.0] and info["episode"]["l"].tolist() == [2, 1]


def test_ppo_trains_on_envpools_atari_with_the_cnn_and_evaluates_the_real_game():
    pytest.importorskip("ale_py")
    agent = PPO(
        "ALE/Breakout-v5",
        vectorization="envpool",
        num_envs=2,
        num_steps=16,
        num_minibatches=2,
        hidden_sizes=(),
        progress=False,
        tensorboard=False,
    )
    assert agent.policy.encoder is not None and agent.policy.observation_space.shape == (4, 84, 84)
    agent.learn(64)
    assert agent.global_step == 64
    result = agent.evaluate(episodes=1)  # gymnasium's ale-py env, the same preprocessing, the unclipped score
    assert result["mean_return"] >= 0


def test_classic_control_through_envpool_reports_its_episodes_and_trains():
    venv, _ = make_vec_env("CartPole-v1", 4, 0, vectorization="envpool")
    rng, ended, resets = np.random.default_rng(0), [], 0
    previous_done = np.zeros(4, bool)
    for _ in range(300):
        _, reward, terminated, truncated, info = venv.step(rng.integers(0, 2, 4))
        resets += int(previous_done.sum())
        previous_done = terminated | truncated
        if "_episode" in info:
            done = info["_episode"]
            ended.extend(zip(info["episode"]["r"][done], info["episode"]["l"][done], strict=True))
    assert len(ended) >= 20
    assert all(r == n and 8 <= n <= 500 for r, n in ended)  # CartPole pays 1 a step: return = length
    assert sum(n for _, n in ended) <= 4 * 300 - resets  # reset rows are in no episode
    venv.close()
    PPO("CartPole-v1", vectorization="envpool", num_envs=4, num_steps=64, progress=False).learn(256)


def test_what_envpool_cannot_do_is_one_line(monkeypatch):
    with pytest.raises(ConfigError, match="EnvPool has no PixelShape-v0"):
        PPO("proxrl.envs.pixel_tasks:PixelShape-v0", vectorization="envpool", progress=False).learn(8)
    with pytest.raises(ConfigError, match="rejected by ALE/Pong-v5"):  # env_kwargs also make the evaluation env
        PPO("ALE/Pong-v5", vectorization="envpool", env_kwargs={"stack_num": 2}, progress=False).learn(8)
    with pytest.raises(ConfigError, match="vectorization=envpool is for runners=local"):
        PPO("CartPole-v1", vectorization="envpool", runners="ray", progress=False)
    real_import = builtins.__import__

    def no_envpool(name, *args, **kwargs):
        if name == "envpool":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_envpool)
    with pytest.raises(ConfigError, match=r"pip install -e \"\.\[envpool\]\""):
        PPO("CartPole-v1", vectorization="envpool", progress=False).learn(8)
