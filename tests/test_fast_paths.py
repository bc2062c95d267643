"""The speed paths of ``proxrl.fast`` against their reference paths, through one differential-test harness.

A fast path is its ``supports(policy)`` and a check against the reference. For every policy in POLICIES, a path
that claims support must match its reference, and the paths that decline must be exactly the ones the policy lists
as unsupported: a ``supports()`` that over-claims, or silently stops applying, fails here. End-to-end: PPO trains
the same with and without the fused gradient.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from proxrl import PPO
from proxrl.fast import flat_adam
from proxrl.fast.flat_adam import FlatParameters, adam_step
from proxrl.fast.fused import FusedClipPPOGradient
from proxrl.fast.numpy_acting import NumpyActing
from proxrl.objectives import clipped_surrogate, entropy_bonus, value_loss
from proxrl.optim import make_adam
from proxrl.policies import ActorCritic

OBS = gym.spaces.Box(-1, 1, (4,), np.float32)
DISCRETE, BOX = gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,), np.float32)


def _moved(policy: ActorCritic) -> ActorCritic:
    """The policy off its initialisation (heads ≈ 0 at init would hide errors in them)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return policy


# name → (the policy, the fast paths that must decline it)
POLICIES: dict[str, tuple[Callable[[], ActorCritic], set[str]]] = {
    "discrete-tanh": (lambda: ActorCritic(OBS, DISCRETE, (16, 8), "tanh", log_std_init=-0.3), set()),
    "discrete-relu": (lambda: ActorCritic(OBS, DISCRETE, (16, 8), "relu"), set()),
    "box-tanh": (lambda: ActorCritic(OBS, BOX, (16, 8), "tanh", log_std_init=-0.3), set()),
    "box-relu": (lambda: ActorCritic(OBS, BOX, (16, 8), "relu", log_std_init=-0.3), set()),
    "box-gsde": (lambda: ActorCritic(OBS, BOX, (16, 8), "tanh", log_std_init=-1.0, use_sde=True), {"fused"}),
    "multidiscrete": (lambda: ActorCritic(OBS, gym.spaces.MultiDiscrete([3, 2]), (16,)), {"fused"}),
    "shared-trunk": (lambda: ActorCritic(OBS, DISCRETE, (16,), shared_trunk=True), {"fused"}),
    "gelu": (lambda: ActorCritic(OBS, DISCRETE, (16,), "gelu"), {"fused", "numpy_acting"}),
    "discrete-obs": (lambda: ActorCritic(gym.spaces.Discrete(5), DISCRETE, (16,)), {"numpy_acting"}),
    "encoder": (lambda: ActorCritic(OBS, DISCRETE, (16,), encoder=_linear_encoder()), {"fused", "numpy_acting"}),
    "lstm": (lambda: ActorCritic(OBS, DISCRETE, (16,), lstm_hidden_size=8), {"fused", "numpy_acting"}),
}


def _linear_encoder() -> nn.Module:
    """An observation encoder (as a CNN, Dict or user module is): the fused and numpy paths must decline it."""
    encoder = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
    encoder.features_dim = 6
    return encoder


def _obs(policy: ActorCritic, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    dtype = next(policy.parameters()).dtype
    if isinstance(policy.observation_space, gym.spaces.Discrete):
        return torch.randint(0, int(policy.observation_space.n), (n,), generator=gen)
    return torch.rand(n, 4, generator=gen, dtype=dtype) * 2 - 1


# ------------------------------------------------------------------------------------------------ the checks
def check_fused(policy: ActorCritic) -> None:
    """The closed-form Clip-PPO gradient, loss and stats equal autograd through objectives.py, for the clipped
    and unclipped critic and with and without the entropy bonus."""
    flat = FlatParameters(policy)
    gen = torch.Generator().manual_seed(0)
    obs = _obs(policy, 64, 0)
    with torch.no_grad():
        dist, values = policy(obs)
        actions = dist.sample()
        logp = dist.log_prob(actions)
    b = dict(
        obs=obs,
        actions=actions,
        old_logp=logp + 0.3 * torch.randn(64, generator=gen),
        adv=torch.randn(64, generator=gen),
        returns=values + torch.randn(64, generator=gen),
        old_values=values + 0.3 * torch.randn(64, generator=gen),
    )
    for clip_vloss in (False, True):
        for ent_coef in (0.0, 0.05):
            dist, values = policy(b["obs"])
            pg, pg_stats = clipped_surrogate(dist.log_prob(b["actions"]), b["old_logp"], b["adv"], 0.2)
            v, _ = value_loss(values, b["returns"], b["old_values"], 0.2 if clip_vloss else None)
            ent, _ = entropy_bonus(dist.entropy())
            loss = pg + 0.5 * v + ent_coef * ent
            stats = torch.stack([pg, v, -ent, pg_stats["approx_kl"], pg_stats["clip_frac"]]).detach()
            assert stats[4] > 0.1, "the batch should exercise the clipped branch"
            flat.zero_grad()
            loss.backward()
            expected = flat.param.grad.clone()
            flat.param.grad.fill_(123.0)  # every entry must be overwritten
            fused = FusedClipPPOGradient(policy, flat, vf_coef=0.5, ent_coef=ent_coef)
            fused_loss, fused_stats = fused(
                b["obs"], b["actions"], b["old_logp"], b["adv"], b["returns"], b["old_values"], 0.2, clip_vloss
            )
            torch.testing.assert_close(flat.param.grad, expected, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(fused_loss, loss.detach(), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(fused_stats, stats, rtol=1e-5, atol=1e-6)


def check_numpy_acting(policy: ActorCritic) -> None:
    """log π(a|s) and V(s) of the numpy pass equal the torch policy's; valid actions; in-place updates seen."""
    acting = NumpyActing(policy, np.random.default_rng(0))
    obs = _obs(policy, 64, 1).numpy()
    if policy.use_sde:  # gSDE: θ_ε,ij ~ N(0, σ_ij²) (20k draws: 5%), and the same θ_ε give the torch actions
        sigma = policy.log_std.detach().exp().numpy()
        np.testing.assert_allclose(acting.resample_exploration(20_000).std(0), sigma, rtol=0.05)
        exploration = torch.from_numpy(acting.resample_exploration(64).copy())
    actions, logp, value = acting.act(obs)
    if policy.use_sde:
        with torch.no_grad():
            t_actions = policy.act(torch.from_numpy(obs), exploration)[0]
        np.testing.assert_allclose(actions, t_actions.numpy(), atol=1e-5, rtol=1e-5)
    t_logp, _, t_value = policy.evaluate(torch.from_numpy(obs), torch.as_tensor(actions))
    np.testing.assert_allclose(logp, t_logp.detach().numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(value, t_value.detach().numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(acting.value(obs), value, atol=1e-6, rtol=0)
    space = policy.action_space
    if not isinstance(space, gym.spaces.Box):  # Gaussian samples are clipped only when sent to the env
        assert all(space.contains(np.asarray(a, dtype=space.dtype)) for a in actions)
    with torch.no_grad():  # the optimiser updates the parameters in place: the numpy views must see it
        policy.critic_head[0].bias.add_(5.0)
    np.testing.assert_allclose(acting.value(obs), policy.value(torch.from_numpy(obs)).detach().numpy(), atol=1e-5)


def check_flat_adam(policy: ActorCritic) -> None:
    """Training through the flat views (gradient, norm clip, Adam) equals per-tensor training, and adam_step
    (the fused kernel called directly) equals Optimizer.step bit for bit."""
    reference, flat_policy = copy.deepcopy(policy), copy.deepcopy(policy)
    flat = FlatParameters(flat_policy)
    assert flat.param.numel() == sum(p.numel() for p in reference.parameters())
    ref_opt = torch.optim.Adam(reference.parameters(), lr=1e-2, eps=1e-5)
    flat_opt = make_adam([flat.param], lr=1e-2, eps=1e-5)
    twin = copy.deepcopy(flat_policy)
    twin_flat = FlatParameters(twin)
    twin_opt = make_adam([twin_flat.param], lr=1e-2, eps=1e-5)
    for step in range(5):
        obs = _obs(policy, 16, 10 + step)
        with torch.no_grad():
            actions = reference(obs)[0].sample()

        def loss_of(module: nn.Module, obs: torch.Tensor = obs, actions: torch.Tensor = actions) -> torch.Tensor:
            logp, entropy, value = module.evaluate(obs, actions)
            return -(logp * 3).mean() + value.pow(2).mean() - 0.1 * entropy.mean()

        ref_opt.zero_grad()
        loss_of(reference).backward()
        ref_norm = nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
        ref_opt.step()
        if step == 2:  # someone else's zero_grad(set_to_none=True) must not silently stop learning
            flat_opt.zero_grad(set_to_none=True)
            flat_policy.zero_grad(set_to_none=True)
        for f, module in ((flat, flat_policy), (twin_flat, twin)):
            f.zero_grad()
            loss_of(module).backward()
            torch.testing.assert_close(f.clip_grad_norm_(0.5), ref_norm)
        for p in flat.params:  # gradients were accumulated into the flat buffer, not into fresh tensors
            assert p.grad.untyped_storage().data_ptr() == flat.param.grad.untyped_storage().data_ptr()
        flat_opt.step()
        adam_step(twin_opt)
        if step > 0 and next(policy.parameters()).dtype == torch.float32:
            assert flat_adam.supports(twin_opt), "adam_step should call the fused kernel directly here"
        for (name, a), b in zip(reference.named_parameters(), flat_policy.parameters(), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
        assert torch.equal(flat.param, twin_flat.param), "adam_step must equal Optimizer.step bit for bit"
    s0, s1 = flat_opt.state[flat.param], twin_opt.state[twin_flat.param]
    assert all(torch.equal(s0[k], s1[k]) for k in ("step", "exp_avg", "exp_avg_sq"))


@dataclass(frozen=True)
class FastPath:
    supports: Callable[[ActorCritic], bool]
    check: Callable[[ActorCritic], None]


FAST_PATHS = {
    "fused": FastPath(FusedClipPPOGradient.supports, check_fused),
    "numpy_acting": FastPath(NumpyActing.supports, check_numpy_acting),
    "flat_adam": FastPath(lambda policy: True, check_flat_adam),  # any module with trainable parameters
}


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("path_name", FAST_PATHS)
def test_a_fast_path_matches_its_reference_wherever_it_claims_support(path_name, policy_name):
    make, declined = POLICIES[policy_name]
    policy = _moved(make())
    path = FAST_PATHS[path_name]
    assert path.supports(policy) == (path_name not in declined), f"{path_name}.supports({policy_name})"
    if path.supports(policy):
        path.check(policy)


# ------------------------------------------------------------------------------------------------ end to end
def test_ppo_chooses_the_fused_gradient_once_where_it_applies():
    assert PPO("CartPole-v1", tensorboard=False).fused is not None
    assert PPO("CartPole-v1", tensorboard=False, fused_gradient=False).fused is None
    assert PPO("CartPole-v1", tensorboard=False, objective="kl").fused is None


@pytest.mark.parametrize("env", ["proxrl_test/Target-discrete-v0", "proxrl_test/Target-box-v0"])
def test_ppo_trains_the_same_with_the_fused_gradient_and_with_autograd(env, tiny_ppo):
    agents, rows = [], []
    for fused in (True, False):  # one after the other: seeding sets torch's global RNG (minibatch shuffles)
        agent, log = PPO(env, seed=3, fused_gradient=fused, clip_vloss=True, ent_coef=0.01, **tiny_ppo), []
        agent.learn(2 * 2 * 16 * 3, callback=lambda a, row, log=log: log.append(row))
        agents.append(agent)
        rows.append(log)
    assert agents[0].fused is not None and agents[1].fused is None
    for p, q in zip(agents[0].policy.parameters(), agents[1].policy.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac"):
        assert rows[0][-1][key] == pytest.approx(rows[1][-1][key], rel=1e-3, abs=1e-5), key


def test_the_float32_paths_decline_a_float64_policy():
    policy = ActorCritic(OBS, BOX, (16,)).double()
    assert not FusedClipPPOGradient.supports(policy) and not NumpyActing.supports(policy)


def test_numpy_sampling_frequencies_match_probabilities():
    policy = ActorCritic(OBS, DISCRETE, (8,))
    with torch.no_grad():
        policy.actor_head[0].weight.zero_()
        policy.actor_head[0].bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
    actions, _, _ = NumpyActing(policy, np.random.default_rng(0)).act(np.zeros((30000, 4), np.float32))
    freq = np.bincount(actions, minlength=3) / 30000
    np.testing.assert_allclose(freq, torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0).numpy(), atol=0.01)


def test_flat_parameters_keep_the_state_dict_and_load_in_place():
    policy, other = ActorCritic(OBS, BOX, (8, 8)), ActorCritic(OBS, BOX, (8, 8))
    keys = list(policy.state_dict())
    flat = FlatParameters(policy)
    assert list(policy.state_dict()) == keys
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    policy.load_state_dict(other.state_dict())  # copies into the views: the flat tensor sees the new weights
    torch.testing.assert_close(flat.param.detach(), torch.cat([p.detach().reshape(-1) for p in other.parameters()]))


def test_the_flat_clip_leaves_small_gradients_alone():
    flat = FlatParameters(ActorCritic(OBS, BOX, (8, 8)))
    flat.param.grad.fill_(1e-4)
    norm = flat.clip_grad_norm_(10.0)
    assert norm.item() < 10.0 and torch.all(flat.param.grad == 1e-4)


def test_a_trainer_runs_numpys_blas_on_as_many_threads_as_torch(tiny_ppo):
    """The numpy acting path's matrix products run on OpenBLAS, which otherwise takes every core: two runs side by
    side then spin on each other's cores (an MLP run went from 2.8 s to 92 s with a second one beside it)."""
    from threadpoolctl import threadpool_info

    try:
        PPO("CartPole-v1", **tiny_ppo, torch_threads=2)
        assert torch.get_num_threads() == 2
        assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {2}
        PPO("CartPole-v1", **tiny_ppo, torch_threads=1)
        assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {1}
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize("preset", ["ppo_cartpole", "ppo_pendulum"])
def test_numpy_acting_gives_a_row_the_same_bits_however_many_rows_share_the_call(preset):
    """What makes N Ray runners × M envs equal the local runner's N·M envs: every layer of the preset's network
    (64-64 tanh trunks, the categorical or Gaussian head, the critic) runs in fixed blocks of rows, so log π(a|s),
    V(s) and the sampled actions of a row do not depend on how many rows share the call (2×4, 4×2, 8×1 and every
    size up to 40 against one call of 40 rows), on the BLAS of the machine that runs this test."""
    from proxrl.algos.ppo import PPOConfig
    from proxrl.config import read_yaml
    from proxrl.runners.runner import SliceOfDraws, build_policy

    values = {k: v for k, v in read_yaml(f"configs/{preset}.yaml").items() if k not in ("algo", "total_steps")}
    torch.manual_seed(0)
    policy = build_policy(PPOConfig(**values))
    obs = np.random.default_rng(1).standard_normal((40, policy.actor_trunk[0].in_features)).astype(np.float32) * 3
    whole = NumpyActing(policy, np.random.default_rng(2)).act(obs)
    for rows in (1, 2, 3, 4, 5, 8, 13, 16, 17, 20, 32):
        parts = [
            NumpyActing(policy, SliceOfDraws(np.random.default_rng(2), 40, first, rows)).act(obs[first : first + rows])
            for first in range(0, 40, rows)
        ]
        for got, expected in zip(map(np.concatenate, zip(*parts, strict=True)), whole, strict=True):
            np.testing.assert_array_equal(got, expected, err_msg=f"{preset}: {rows} rows a call")
