"""gSDE (generalised state-dependent exploration, Raffin et al. 2021): the variance formula against a Monte-Carlo
estimate, the log-probability against torch's Normal, the rollout's exploration matrices (held between resample
points, one per env), where the gradient goes, and the trainers on a Box env (smoke, save/load, exact resume)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributions as D
from gymnasium import spaces

from proxrl import PG, PPO, ConfigError, OffPolicyPG
from proxrl.algos.ppo import PPOConfig
from proxrl.distributions import (
    GSDE_VAR_EPS,
    DiagGaussian,
    gsde_distribution,
    gsde_noise,
    gsde_variance,
    sample_exploration,
)
from proxrl.envs import make_vec_env
from proxrl.fast.flat_adam import FlatParameters
from proxrl.policies import ActorCritic
from proxrl.rollout import Rollout
from proxrl.runners.group import InProcessGroup
from proxrl.runners.runner import build_policy

TINY = dict(num_envs=2, num_steps=16, num_minibatches=2, num_epochs=2, tensorboard=False, hidden_sizes=(16,))
GSDE = dict(use_sde=True, log_std_init=-1.0)


def _features_and_log_std(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """φ ``[3, 5]`` and a log σ ``[5, 2]`` whose entries differ (so σ and σ², φ and φ² give other variances)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 5, generator=g), torch.randn(5, 2, generator=g) * 0.5 - 0.5


def test_gsde_variance_equals_the_monte_carlo_variance_of_phi_times_theta() -> None:
    """Var_j = Σ_i φ_i² σ_ij² against 100k draws of ε = φ·θ_ε, θ_ε from sample_exploration; tolerance 3% (the
    estimate's relative standard error is √(2/n) ≈ 0.45%), and the dims are uncorrelated (|r| < 0.02)."""
    phi, log_std = _features_and_log_std()
    torch.manual_seed(1)
    n = 100_000
    for row in range(phi.shape[0]):
        theta = sample_exploration(log_std, n)  # [n, 5, 2]
        eps = gsde_noise(phi[row].expand(n, -1), theta)  # [n, 2]
        formula = gsde_variance(phi[row : row + 1], log_std.exp())[0]
        torch.testing.assert_close(eps.var(0), formula, rtol=0.03, atol=0.0)
        assert eps.mean(0).abs().max() < 4 * (formula / n).sqrt().max()
        assert abs(float(torch.corrcoef(eps.T)[0, 1])) < 0.02


def test_gsde_log_prob_and_entropy_are_torchs_normal_with_the_formulas_std() -> None:
    """log π and H are those of N(μ, √(Σ_i φ_i² σ_ij² + 10⁻⁶)) built with torch.distributions, to 1e-5."""
    phi, log_std = _features_and_log_std(2)
    mean = torch.randn(3, 2, generator=torch.Generator().manual_seed(3))
    var = torch.einsum("bi,ij->bj", phi**2, log_std.exp() ** 2)  # written apart from gsde_variance
    ref = D.Independent(D.Normal(mean, (var + 1e-6).sqrt()), 1)
    dist = gsde_distribution(mean, phi, log_std)
    actions = ref.sample((4,))  # [4, 3, 2]
    for a in actions:
        torch.testing.assert_close(dist.log_prob(a), ref.log_prob(a), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dist.entropy(), ref.entropy(), rtol=1e-5, atol=1e-5)
    assert GSDE_VAR_EPS == 1e-6


def test_gsde_noise_is_each_rows_features_times_its_own_matrix() -> None:
    phi, log_std = _features_and_log_std(4)
    theta = sample_exploration(log_std, 3)
    expected = torch.stack([phi[b] @ theta[b] for b in range(3)])
    torch.testing.assert_close(gsde_noise(phi, theta), expected, rtol=1e-6, atol=1e-6)


def _policy(learn_features: bool = False, shared: bool = False) -> ActorCritic:
    torch.manual_seed(0)
    obs, act = spaces.Box(-1, 1, (3,)), spaces.Box(-2, 2, (2,))
    return ActorCritic(
        obs, act, (8, 6), shared_trunk=shared, log_std_init=-1.0, use_sde=True, sde_learn_features=learn_features
    )


def test_act_adds_phi_theta_to_the_mean_and_scores_it_under_the_marginal() -> None:
    policy = _policy()
    assert policy.log_std is not None and policy.log_std.shape == (6, 2)  # [L, A]: the trunk's last width × actions
    obs = torch.randn(4, 3)
    theta = policy.sample_exploration(4)
    assert theta.shape == (4, 6, 2) and not theta.requires_grad
    with torch.no_grad():
        actions, logp, _ = policy.act(obs, theta)
        phi = policy.actor_trunk(obs)
        mean = policy.actor_head(phi)
        torch.testing.assert_close(actions, mean + gsde_noise(phi, theta))
        torch.testing.assert_close(logp, gsde_distribution(mean, phi, policy.log_std).log_prob(actions))
        deterministic = policy.env_actions(obs, deterministic=True)
    np.testing.assert_allclose(deterministic, np.clip(mean.numpy(), -2, 2), rtol=1e-6)


@pytest.mark.parametrize("learn_features", [False, True])
def test_the_variance_trains_log_std_and_the_features_only_with_learn_features(learn_features: bool) -> None:
    """The entropy depends on π's variance alone: its gradient reaches log σ always, the actor trunk (φ) only with
    sde_learn_features, and never the mean's head."""
    policy = _policy(learn_features)
    dist = policy.distribution(torch.randn(5, 3))
    assert isinstance(dist, DiagGaussian)
    dist.entropy().sum().backward()
    assert policy.log_std is not None and policy.log_std.grad is not None
    assert policy.log_std.grad.abs().min() > 0
    trunk_grads = [p.grad for p in policy.actor_trunk.parameters()]
    if learn_features:
        assert all(g is not None and g.abs().sum() > 0 for g in trunk_grads)
    else:
        assert all(g is None for g in trunk_grads)
    assert all(p.grad is None for p in policy.actor_head.parameters())


def _recorded_matrices(rollout: Rollout) -> list[torch.Tensor]:
    """Wrap the rollout's acting step to record the exploration matrices each step acts with."""
    seen: list[torch.Tensor] = []
    act = rollout._act

    def recording(obs: np.ndarray, starts: np.ndarray):  # type: ignore[no-untyped-def]
        assert rollout.exploration is not None
        seen.append(rollout.exploration.clone())
        return act(obs, starts)

    rollout._act = recording  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("numpy_acting", [True, False], ids=["numpy", "torch"])
@pytest.mark.parametrize(("freq", "blocks"), [(4, [(0, 4), (4, 8), (8, 10)]), (-1, [(0, 10)])])
def test_the_rollouts_matrices_hold_between_resample_points_and_change_at_them(
    freq: int, blocks: list, numpy_acting: bool
) -> None:
    """sde_sample_freq=4 over 10 steps: steps 0-3, 4-7 and 8-9 each share one matrix per env, and every block (and
    the next rollout's start) draws new ones; -1: one per env for the whole rollout. Envs never share one. On
    both acting paths, and the stored actions are μ(s) + φ(s)·θ_ε with the step's matrices."""
    cfg = PPOConfig(env="Pendulum-v1", num_envs=3, num_steps=10, num_minibatches=1, hidden_sizes=(8,), **GSDE)
    policy = build_policy(cfg)
    venv, _ = make_vec_env(cfg.env, cfg.num_envs, 0, {}, "sync")
    rng = np.random.default_rng(0) if numpy_acting else None
    rollout = Rollout(venv, policy, cfg.num_steps, torch.device("cpu"), rng, freq)
    assert (rollout._numpy_acting is not None) == numpy_acting
    rollout.start(venv.reset(seed=0)[0])
    seen = _recorded_matrices(rollout)
    batch = rollout.collect()
    with torch.no_grad():
        obs = batch.obs.reshape(-1, 3)
        phi = policy.actor_trunk(obs)
        expected = policy.actor_head(phi) + gsde_noise(phi, torch.cat(seen))
    torch.testing.assert_close(batch.actions.reshape(-1, 1), expected, rtol=1e-5, atol=1e-5)
    rollout.collect()
    assert len(seen) == 20
    firsts = []
    for start, end in blocks:
        for t in range(start, end):
            assert torch.equal(seen[t], seen[start]), t
        assert not torch.equal(seen[start][0], seen[start][1])  # one matrix per env
        firsts.append(seen[start])
    firsts.append(seen[10])  # the next rollout starts with fresh ones
    for i in range(len(firsts) - 1):
        assert (firsts[i] != firsts[i + 1]).all()
    venv.close()


def test_use_sde_refuses_discrete_actions_recurrent_policies_and_a_zero_period() -> None:
    with pytest.raises(ConfigError, match="use_sde=true .* needs Box actions"):
        PPO("CartPole-v1", use_sde=True, progress=False)
    with pytest.raises(ConfigError, match="use_sde=true .* set recurrent=none"):
        PPOConfig(env="Pendulum-v1", use_sde=True, recurrent="lstm", num_envs=4, num_minibatches=4)
    with pytest.raises(ConfigError, match="sde_sample_freq=0"):
        PPOConfig(env="Pendulum-v1", use_sde=True, sde_sample_freq=0)


@pytest.mark.parametrize(
    ("cls", "extra"),
    [
        (PPO, {}),
        (PPO, {"objective": "clip_kl", "shared_trunk": True}),
        (PG, {"advantage": "gae"}),
        (OffPolicyPG, {"replay_ratio": 1}),
    ],
    ids=["ppo", "ppo-clip_kl-shared", "pg", "offpolicy_pg"],
)
def test_two_iterations_with_gsde_change_every_parameter(cls: type, extra: dict) -> None:
    """On Pendulum, acting on the numpy path and training through autograd (the fused gradient declines gSDE)."""
    kwargs = {**TINY, **GSDE, "sde_sample_freq": 4, **extra}
    if cls is not PPO:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("num_minibatches", "num_epochs")}
    agent = cls("Pendulum-v1", seed=0, progress=False, **kwargs)
    assert getattr(agent, "fused", None) is None
    before = {k: v.clone() for k, v in agent.policy.named_parameters()}
    agent.learn(2 * 2 * 16)
    assert agent.progress.iteration == 2
    assert agent.rollout()._numpy_acting is not None
    for name, p in agent.policy.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"


def test_gsde_save_load_round_trip_keeps_the_log_std_matrix_and_learning_continues(tmp_path) -> None:
    agent = PPO("Pendulum-v1", seed=3, progress=False, **TINY, **GSDE).learn(64)
    loaded = PPO.load(agent.save(tmp_path / "a.pt"), progress=False)
    assert loaded.policy.use_sde and loaded.policy.log_std is not None
    assert loaded.policy.log_std.shape == (16, 1)
    assert torch.equal(loaded.policy.log_std, agent.policy.log_std)
    obs = np.random.default_rng(0).uniform(-1, 1, (5, 3)).astype(np.float32)
    np.testing.assert_array_equal(agent.predict(obs), loaded.predict(obs))
    loaded.learn(64)
    assert loaded.global_step == 128


def test_gsde_run_interrupted_and_resumed_ends_bit_identical(tmp_path) -> None:
    """The matrices are drawn afresh at every rollout's start from torch's generator, which a checkpoint holds: a
    resumed run draws the same ones."""
    kwargs = {**TINY, **GSDE, "sde_sample_freq": 5, "total_steps": 6 * 32, "seed": 7, "checkpoint_every": 1}
    whole = PPO("Pendulum-v1", progress=False, **kwargs).learn()
    first = PPO("Pendulum-v1", run_dir=tmp_path, progress=False, **kwargs)
    first.learn(callback=lambda a, row: a.progress.iteration < 3)
    resumed = PPO.load(tmp_path, run_dir=tmp_path, progress=False)
    assert resumed.global_step == 3 * 32
    resumed.learn()
    for (name, a), b in zip(whole.policy.named_parameters(), resumed.policy.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_runners_with_gsde_give_the_local_rollouts_columns_bit_for_bit() -> None:
    """Two in-process runners (the Ray runners' code) of 2 envs each draw their rows of the run's matrices (numpy
    acting, SliceOfDraws) and give the local 4-env rollout's batch bit for bit, twice (sde_sample_freq=3 over 8
    steps); the stored log-probs are the learner's π(a|s) of the stored actions."""
    cfg = PPOConfig(
        env="Pendulum-v1", num_envs=4, num_steps=8, num_runners=2, hidden_sizes=(8,), seed=1, sde_sample_freq=3, **GSDE
    )
    policy = build_policy(cfg)
    flat = FlatParameters(policy)
    local_rng, group_rng = np.random.default_rng(1), np.random.default_rng(1)
    venv, _ = make_vec_env(cfg.env, cfg.num_envs, cfg.seed, {}, "sync")
    local = Rollout(venv, policy, cfg.num_steps, torch.device("cpu"), local_rng, cfg.sde_sample_freq)
    local.start(venv.reset(seed=cfg.seed)[0])
    group = InProcessGroup(cfg, lambda: flat.param.detach().numpy(), group_rng, torch.device("cpu"), 0)
    for _ in range(2):
        expected, batch = local.collect(), group.collect()
        for name in ("obs", "actions", "logp", "values", "rewards"):
            assert torch.equal(getattr(batch, name), getattr(expected, name)), name
    with torch.no_grad():
        logp = policy.distribution(batch.obs.reshape(-1, 3)).log_prob(batch.actions.reshape(-1, 1))
    torch.testing.assert_close(logp.reshape(8, 4), batch.logp, rtol=1e-5, atol=1e-5)
    group.close()
    venv.close()
