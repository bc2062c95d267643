"""The closed-form Clip-PPO gradient (proxrl.fast.fused) equals autograd through objectives.py; adam_step equals
Optimizer.step bit for bit; PPO trains the same either way."""

import copy

import gymnasium as gym
import pytest
import torch

from proxrl import PPO
from proxrl.fast.fused import FusedClipPPOGradient
from proxrl.objectives import clipped_surrogate, entropy_bonus, value_loss
from proxrl.optim import FlatParameters, adam_step, make_adam
from proxrl.policies import ActorCritic

SPACES = {"discrete": gym.spaces.Discrete(3), "box": gym.spaces.Box(-1, 1, (2,))}


def _batch(policy: ActorCritic, n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """A minibatch whose old log-probs put ratios on both sides of the clip range."""
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 4, generator=gen)
    with torch.no_grad():
        dist, values = policy(obs)
        actions = dist.sample()
        logp = dist.log_prob(actions)
    return dict(obs=obs, actions=actions, old_logp=logp + 0.3 * torch.randn(n, generator=gen),
                adv=torch.randn(n, generator=gen), returns=values + torch.randn(n, generator=gen),
                old_values=values + 0.3 * torch.randn(n, generator=gen))


def _autograd_loss(policy, b, clip_eps, clip_vloss, vf_coef, ent_coef):
    dist, values = policy(b["obs"])
    pg, pg_stats = clipped_surrogate(dist.log_prob(b["actions"]), b["old_logp"], b["adv"], clip_eps)
    v, _ = value_loss(values, b["returns"], b["old_values"], clip_eps if clip_vloss else None)
    ent, _ = entropy_bonus(dist.entropy())
    return pg + vf_coef * v + ent_coef * ent, torch.stack([pg, v, -ent, pg_stats["approx_kl"],
                                                          pg_stats["clip_frac"]]).detach()


@pytest.mark.parametrize("kind", ["discrete", "box"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("clip_vloss", [False, True])
@pytest.mark.parametrize("ent_coef", [0.0, 0.05])
def test_fused_gradient_equals_autograd_through_the_objectives(kind, activation, clip_vloss, ent_coef):
    torch.manual_seed(0)
    policy = ActorCritic(gym.spaces.Box(-1, 1, (4,)), SPACES[kind], (16, 8), activation, log_std_init=-0.3)
    flat = FlatParameters(policy)
    b = _batch(policy)
    loss, stats = _autograd_loss(policy, b, 0.2, clip_vloss, 0.5, ent_coef)
    flat.zero_grad()
    loss.backward()
    expected = flat.param.grad.clone()
    assert stats[4] > 0.1, "the batch should exercise the clipped branch"

    flat.param.grad.fill_(123.0)  # every entry must be overwritten
    fused = FusedClipPPOGradient(policy, flat, vf_coef=0.5, ent_coef=ent_coef)
    fused_loss, fused_stats = fused(b["obs"], b["actions"], b["old_logp"], b["adv"], b["returns"],
                                    b["old_values"], 0.2, clip_vloss)
    torch.testing.assert_close(flat.param.grad, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fused_loss, loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused_stats, stats, rtol=1e-5, atol=1e-6)


def test_fused_gradient_declines_what_it_does_not_implement():
    box, discrete = gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2)
    assert FusedClipPPOGradient.supports(ActorCritic(box, discrete))
    assert not FusedClipPPOGradient.supports(ActorCritic(box, discrete, shared_trunk=True))
    assert not FusedClipPPOGradient.supports(ActorCritic(box, discrete, activation="gelu"))
    assert not FusedClipPPOGradient.supports(ActorCritic(box, gym.spaces.MultiDiscrete([2, 3])))
    assert not FusedClipPPOGradient.supports(ActorCritic(box, discrete).double())
    assert PPO("CartPole-v1", tensorboard=False).fused is not None
    assert PPO("CartPole-v1", tensorboard=False, fused_gradient=False).fused is None
    assert PPO("CartPole-v1", tensorboard=False, objective="kl").fused is None


def test_adam_step_is_bit_identical_to_optimizer_step():
    torch.manual_seed(0)
    policy = ActorCritic(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), (8,))
    twin = copy.deepcopy(policy)
    flats = FlatParameters(policy), FlatParameters(twin)
    opts = [make_adam([f.param], lr=1e-2, eps=1e-5) for f in flats]
    gen = torch.Generator().manual_seed(1)
    for step in range(6):
        grad = torch.randn(flats[0].param.shape, generator=gen)
        for f, opt in zip(flats, opts, strict=True):
            f.param.grad.copy_(grad)
            for group in opt.param_groups:
                group["lr"] = 1e-2 * (1 - step / 10)  # annealed, as PPO does
        opts[0].step()
        adam_step(opts[1])
    assert torch.equal(flats[0].param, flats[1].param)
    s0, s1 = opts[0].state[flats[0].param], opts[1].state[flats[1].param]
    assert all(torch.equal(s0[k], s1[k]) for k in ("step", "exp_avg", "exp_avg_sq"))


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
