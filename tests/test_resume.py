"""Exact resume and determinism: an interrupted and resumed CPU run ends with the parameters of an uninterrupted
one, bit for bit (RNG states of torch, numpy, python, the acting sampler and the envs are checkpointed)."""

import pytest
import torch

from proxrl import PPO, MultiAgentPPO


def _params(agent):
    return torch.cat([p.detach().reshape(-1) for p in agent.policy.parameters()])


def _interrupt_and_resume(cls, run_dir, kwargs, stop_after):
    """Run with a callback that stops after ``stop_after`` iterations, then load the run directory and finish."""
    first = cls(run_dir=run_dir, **kwargs)
    first.learn(callback=lambda a, row: a.progress.iteration < stop_after)
    assert first.global_step < first.config.total_steps
    resumed = cls.load(run_dir, run_dir=run_dir, progress=False)
    assert resumed.global_step == first.global_step
    resumed.learn()
    return resumed


@pytest.mark.parametrize(
    "vectorization,extra",
    [("sync", {}), ("vector_entry_point", {}), ("sync", {"recurrent": "lstm", "lstm_hidden_size": 8, "num_envs": 4})],
    ids=["sync", "vector_entry_point", "lstm"],
)
def test_ppo_interrupted_and_resumed_ends_bit_identical(tmp_path, vectorization, extra):
    """With an LSTM the checkpoint also holds its state (h, c) in the episodes under way, and which rows start one."""
    kwargs = {
        "env": "CartPole-v1",
        "num_envs": 3,
        "num_steps": 32,
        "num_minibatches": 2,
        "num_epochs": 2,
        "total_steps": 32 * extra.get("num_envs", 3) * 6,
        "seed": 7,
        "vectorization": vectorization,
        "checkpoint_every": 1,
        "tensorboard": False,
        "progress": False,
        "hidden_sizes": (16,),
        **extra,
    }
    whole = PPO(**kwargs).learn()
    resumed = _interrupt_and_resume(PPO, tmp_path / "run", kwargs, stop_after=3)
    assert resumed.global_step == whole.global_step
    assert torch.equal(_params(resumed), _params(whole))
    assert list(resumed.progress.recent_returns) == list(whole.progress.recent_returns)


def test_ppo_without_env_state_resumes_but_not_exactly(tmp_path):
    """The control: dropping the saved env state (a fresh reset on resume) changes the result."""
    kwargs = dict(
        env="CartPole-v1",
        num_envs=3,
        num_steps=32,
        num_minibatches=2,
        num_epochs=2,
        total_steps=96 * 6,
        seed=7,
        vectorization="sync",
        checkpoint_every=1,
        tensorboard=False,
        progress=False,
        hidden_sizes=(16,),
    )
    whole = PPO(**kwargs).learn()
    first = PPO(run_dir=tmp_path / "run", **kwargs)
    first.learn(callback=lambda a, row: a.progress.iteration < 3)
    resumed = PPO.load(tmp_path / "run", progress=False)
    resumed.envs.saved_envs = None
    resumed.learn()
    assert not torch.equal(_params(resumed), _params(whole))


@pytest.mark.parametrize(
    "env,env_kwargs,method",
    [
        ("proxrl.envs.matrix_games", {"game": "penalty"}, "happo"),
        # turn-based, 3-move games in 7-row rollouts: each checkpoint holds actions still awaiting their reward
        ("turn_game", {"length": 3}, "mappo"),
    ],
)
def test_multiagent_interrupted_and_resumed_ends_bit_identical(tmp_path, env, env_kwargs, method):
    kwargs = dict(
        env=env,
        env_kwargs=env_kwargs,
        method=method,
        num_envs=2,
        num_steps=8 if method == "happo" else 7,
        total_steps=16 * 6,
        seed=3,
        checkpoint_every=1,
        tensorboard=False,
        progress=False,
    )
    whole = MultiAgentPPO(**kwargs).learn()
    resumed = _interrupt_and_resume(MultiAgentPPO, tmp_path / "run", kwargs, stop_after=2)
    assert torch.equal(_params(resumed), _params(whole))


def test_the_same_seed_gives_the_same_learning_curve_twice():
    kwargs = dict(
        env="CartPole-v1",
        num_envs=2,
        num_steps=32,
        num_minibatches=2,
        num_epochs=2,
        total_steps=64 * 4,
        seed=11,
        tensorboard=False,
        progress=False,
        hidden_sizes=(16,),
    )
    curves = []
    for _ in range(2):
        rows = []
        PPO(**kwargs).learn(callback=lambda a, row, rows=rows: rows.append((row["policy_loss"], row["mean_return"])))
        curves.append(rows)
    assert curves[0] == curves[1]


def test_grpo_interrupted_and_resumed_ends_bit_identical(tmp_path):
    """GRPO on a tiny model with a KL reference, μ = 2 and an lr warm-up: stopped after 2 of 4 steps and resumed
    from the checkpoint, it ends where the uninterrupted run ends (policy, reference, rewards seen)."""
    pytest.importorskip("transformers")
    from proxrl import GRPO

    kwargs = dict(
        env="addition",
        tiny_hidden_size=16,
        tiny_layers=1,
        tiny_heads=2,
        warmup_steps=5,
        prompts_per_step=2,
        group_size=4,
        max_new_tokens=4,
        lr=1e-3,
        lr_warmup_steps=3,
        beta=0.1,
        num_iterations=2,
        total_steps=4,
        checkpoint_every=1,
        eval_every=2,
        eval_examples=8,
        eval_samples=2,
        seed=5,
        tensorboard=False,
        progress=False,
        torch_threads=1,
    )
    whole = GRPO(run_dir=tmp_path / "whole", **kwargs).learn()
    first = GRPO(run_dir=tmp_path / "run", **kwargs)
    first.learn(callback=lambda a, row: a.global_step < 2)
    assert first.global_step == 2
    resumed = GRPO.load(tmp_path / "run", run_dir=tmp_path / "run", progress=False)
    resumed.learn()
    assert resumed.global_step == whole.global_step == 4
    assert torch.equal(_params(resumed), _params(whole))
    assert all(
        torch.equal(p, q)
        for p, q in zip(resumed.reference.model.parameters(), whole.reference.model.parameters(), strict=True)
    )
    assert list(resumed.progress.recent_returns) == list(whole.progress.recent_returns)
    assert resumed.held_out == whole.held_out


@pytest.mark.parametrize(
    "env,vectorization,unsaved",
    [
        ("InvertedPendulum-v5", "sync", "MjData"),  # MuJoCo's simulator state lives in C objects
        ("CartPole-v1", "async", "worker processes"),  # an async vector env's envs live in other processes
    ],
)
def test_envs_a_checkpoint_cannot_hold_resume_from_a_clean_seeded_reset_and_say_so(
    tmp_path, env, vectorization, unsaved
):
    if env.startswith("Inverted"):
        pytest.importorskip("mujoco")
    import numpy as np

    from proxrl.envs import make_vec_env
    from proxrl.errors import ResumeWarning

    kwargs = dict(
        env=env,
        num_envs=2,
        num_steps=16,
        num_minibatches=2,
        num_epochs=1,
        total_steps=32 * 3,
        seed=4,
        vectorization=vectorization,
        checkpoint_every=1,
        tensorboard=False,
        progress=False,
        hidden_sizes=(8,),
        norm_obs=False,  # the raw observations of a clean reset are compared (MuJoCo's would be normalised)
        norm_reward=False,
    )
    first = PPO(run_dir=tmp_path / "run", **kwargs)
    first.learn(callback=lambda a, row: a.progress.iteration < 2)
    resumed = PPO.load(tmp_path / "run", run_dir=tmp_path / "run", progress=False)
    with pytest.warns(ResumeWarning, match=f"clean reset with seed {4 + 64}.*") as caught:
        rollout = resumed.start_envs()
    assert unsaved in str(caught[0].message)
    fresh, _ = make_vec_env(env, 2, 4 + 64, None, vectorization)
    expected, _ = fresh.reset(seed=4 + 64)
    np.testing.assert_array_equal(rollout.obs, expected)  # the clean reset's observation, not the saved one
    assert not rollout.prev_done.any()
    if vectorization == "sync":  # no old TimeLimit counter either
        assert all(e.get_wrapper_attr("_elapsed_steps") == 0 for e in rollout.venv.unwrapped.envs)
    fresh.close()
    rollout.venv.close()
