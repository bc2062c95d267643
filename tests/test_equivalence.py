"""Settings that must be the same algorithm give the same result (DESIGN's equivalence tests, TRL's invariance idea):
MAPPO with one agent is PPO's update, HAPPO with one agent is MAPPO, GRPO with gradient accumulation is GRPO
without it; and through the whole loop, a truncation-only env's V converges to r / (1 − γ) (SB3's
infinite-horizon test)."""

from __future__ import annotations

import copy

import pytest
import torch

import recording_games
import toy_envs  # noqa: F401 - registers proxrl_test/ envs
from proxrl import PG, PPO, MultiAgentPPO
from test_ppo_equations import TOL, actor_params, distance, reference


class SoloPolicy(torch.nn.Module):
    """MultiAgentActorCritic's one actor and critic behind the single-agent policy's names (action_params, value,
    parameters named actor.* and critic.*), so the PPO reference of test_ppo_equations can run on them."""

    def __init__(self, actor: torch.nn.Module, critic: torch.nn.Module) -> None:
        super().__init__()
        self.actor, self.critic = actor, critic

    def action_params(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs)[:, 0]


SOLO = dict(
    num_envs=2,
    num_steps=16,
    num_epochs=4,
    num_minibatches=1,
    lr=0.05,
    adam_eps=1e-5,
    ent_coef=0.0,
    max_grad_norm=0.0,
    hidden_sizes=(16,),
    seed=3,
    tensorboard=False,
    progress=False,
)


def test_mappo_with_one_agent_performs_ppos_update():
    # the same seed-equation reference that PPO's own update matches (test_ppo_equations) on MAPPO's samples
    agent = MultiAgentPPO("solo_bandit", method="mappo", **SOLO)
    initial = SoloPolicy(copy.deepcopy(agent.policy.actors[0]), copy.deepcopy(agent.policy.critics[0]))
    samples: list[list[tuple[int, float]]] = []
    recording_games.SOLO_STEPS.clear()

    def after(a: MultiAgentPPO, row: dict) -> None:
        samples.append(list(recording_games.SOLO_STEPS))
        recording_games.SOLO_STEPS.clear()

    agent.learn(2 * 32, callback=after)
    assert [len(s) for s in samples] == [32, 32]
    expected, _, _ = reference(initial, samples, "clip", clip_eps=0.2, lr=0.05, adam_eps=1e-5)
    got = actor_params(SoloPolicy(agent.policy.actors[0], agent.policy.critics[0]))
    assert distance(got, expected) < TOL


def test_happo_with_one_agent_is_mappo():
    # one agent: M = 1 and the order is trivial, so one iteration from the same seed ends at the same parameters
    # (critic and actor are separate networks with their own Adam: updating one before the other changes nothing)
    mappo = MultiAgentPPO("solo_bandit", method="mappo", **SOLO)  # each built just before it runs: one seeding
    initial = [p.detach().clone() for p in mappo.policy.parameters()]
    mappo.learn(32)
    happo = MultiAgentPPO("solo_bandit", method="happo", **SOLO)
    assert all(torch.equal(p, q) for p, q in zip(initial, happo.policy.parameters(), strict=True))
    happo.learn(32)
    for (name, p), q, p0 in zip(mappo.policy.named_parameters(), happo.policy.parameters(), initial, strict=True):
        assert not torch.equal(p, p0), name
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


@pytest.mark.parametrize(  # bnpo is not here: TRL's bnpo normalises each micro-batch by its own tokens
    "loss_type,level", [("grpo", "token"), ("dapo", "token"), ("dr_grpo", "token"), ("grpo", "sequence")]
)
def test_grpo_gradient_accumulation_gives_the_parameters_of_one_batch(loss_type, level):
    pytest.importorskip("transformers")
    from proxrl import GRPO

    kwargs = dict(
        env="addition",
        tiny_hidden_size=16,
        tiny_layers=1,
        tiny_heads=2,
        warmup_steps=0,
        prompts_per_step=2,
        group_size=4,
        max_new_tokens=4,
        lr=1e-2,
        beta=0.1,
        num_iterations=2,
        max_grad_norm=1.0,
        loss_type=loss_type,
        importance_sampling_level=level,
        total_steps=2,
        eval_every=0,
        eval_examples=4,
        seed=2,
        tensorboard=False,
        progress=False,
    )
    whole = GRPO(**kwargs)
    initial = [p.detach().clone() for p in whole.policy.parameters()]
    rows: dict[int, list[dict]] = {1: [], 4: []}
    whole.learn(callback=lambda a, row: rows[1].append(row))
    accumulated = GRPO(**kwargs, grad_accum_steps=4).learn(callback=lambda a, row: rows[4].append(row))
    for p, q in zip(whole.policy.parameters(), accumulated.policy.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    # the same loss and gradient norm, not only the same steps (Adam and the norm clip hide a constant factor)
    for key in ("loss", "grad_norm", "kl", "clip_frac"):
        assert [r[key] for r in rows[4]] == pytest.approx([r[key] for r in rows[1]], rel=1e-4, abs=1e-7), key
    # the smoke part: every trainable parameter moved
    assert all(not torch.equal(p, q) for p, q in zip(whole.policy.parameters(), initial, strict=True))


@pytest.mark.parametrize(
    "make",
    [
        lambda **k: PPO(**k, num_steps=32, num_minibatches=1, num_epochs=10, vf_coef=1.0),
        lambda **k: PG(**k, num_steps=8, advantage="gae", vf_coef=1.0),  # one Adam step per rollout: short rollouts
        lambda **k: PG(**k, num_steps=8, advantage="return_minus_value", vf_coef=1.0),
    ],
    ids=["ppo", "pg-gae", "pg-return-minus-value"],
)
def test_a_truncation_only_env_value_converges_to_r_over_one_minus_gamma(make):
    # reward 1 every step and only a time limit (5 steps) ever ends an episode: with truncations bootstrapped the
    # value is 1 / (1 − γ) = 10; treating them as terminations would give about 2.6 (the mean 5-step return)
    agent = make(
        env="proxrl_test/Constant-v0",
        gamma=0.9,
        num_envs=4,
        lr=1e-2,
        anneal_lr=False,
        max_grad_norm=0.0,
        hidden_sizes=(16,),
        seed=0,
        progress=False,
        tensorboard=False,
    )
    agent.learn(6_000)
    v = agent.policy.value(torch.full((1, 1), 0.5)).item()
    assert v == pytest.approx(10.0, rel=0.02)
