"""PPO's update against the seed's equations, redone by hand on the samples the trainer actually drew.

The env (``RecordingBandit``: one state, three actions, one-step episodes) records every action the trainer took,
so the test knows the batch exactly. It then rebuilds the update from the seed's formulas — Â = r − V(s) (the
episode terminates), normalised; ρ = π_θ(a|s)/π_old(a|s); J^CLIP or J^KL with the exact D_KL(π_old(·|s) ‖ π_θ(·|s));
the adaptive-KL rule applied to the KL the update reached — with plain ``torch.optim.Adam`` on a copy of the
policy, and requires the trainer's actor to end at the same parameters. Each test also shows that the wrong
variant of its equation ends measurably elsewhere, so a pass is evidence, not luck.

With separate actor and critic networks, no gradient clipping and no entropy bonus, the actor's update depends
only on the policy loss (Adam is elementwise), so the critic's part need not be redone.
"""

from __future__ import annotations

import copy

import pytest
import torch

import toy_envs  # noqa: F401 - registers proxrl_test/ envs
from proxrl import PPO
from toy_envs import RecordingBandit

S = torch.ones(1, 1)  # the bandit's only observation
TOL = 2e-5  # float32 Adam (fused vs reference loop), a few steps
BASE = dict(env="proxrl_test/RecordingBandit-v0", num_envs=4, num_steps=16, num_minibatches=1, num_epochs=4,
            lr=0.05, anneal_lr=False, max_grad_norm=0.0, ent_coef=0.0, seed=3, progress=False)


def actor_params(policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.named_parameters() if n.startswith("actor")}


def run(iterations: int, **overrides) -> tuple[PPO, torch.nn.Module, list[list[tuple[int, float]]], list[float]]:
    """Train ``iterations`` PPO iterations; returns the agent, a copy of its initial policy, the samples of each
    iteration and c after each iteration."""
    kwargs = {**BASE, **overrides}
    agent = PPO(**kwargs)
    initial = copy.deepcopy(agent.policy)
    samples: list[list[tuple[int, float]]] = []
    coefs: list[float] = []
    RecordingBandit.steps.clear()

    def after(a: PPO, row: dict) -> None:
        samples.append(list(RecordingBandit.steps))
        RecordingBandit.steps.clear()
        coefs.append(a.kl_coef)

    agent.learn(iterations * kwargs["num_envs"] * kwargs["num_steps"], callback=after)
    assert all(len(s) == 32 for s in samples)  # 16 steps × 4 envs, every other step a reset step
    return agent, initial, samples, coefs


def categorical_kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """D_KL(p ‖ q) = Σ_a p(a) (log p(a) − log q(a))."""
    return (logp.exp() * (logp - logq)).sum()


def reference(initial: torch.nn.Module, samples: list[list[tuple[int, float]]], objective: str, clip_eps: float = 0.2,
              kl_coef: float = 1.0, kl_target: float = 0.01, epochs: int = 4, lr: float = 0.05, adam_eps: float = 1e-5,
              kl_direction: str = "old_new", adapt_on: str = "reached") -> tuple[dict, list[float], list[dict]]:
    """The seed's PPO update, iteration by iteration; returns the actor's parameters, c after each iteration and
    per-iteration diagnostics (the KL reached, the mean KL before each step)."""
    policy = copy.deepcopy(initial)
    actor = [p for n, p in policy.named_parameters() if n.startswith("actor")]
    opt = torch.optim.Adam(actor, lr=lr, eps=adam_eps)
    c, coefs, info = kl_coef, [], []
    for batch in samples:
        actions = torch.tensor([a for a, _ in batch])
        rewards = torch.tensor([r for _, r in batch])
        with torch.no_grad():
            old = policy.action_params(S)[0].log_softmax(-1)
            adv = rewards - policy.value(S)[0]  # one-step episodes: Â = r − V(s), no bootstrap
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        kls = []
        for _ in range(epochs):
            logp = policy.action_params(S)[0].log_softmax(-1)
            ratio = (logp[actions] - old[actions]).exp()
            kl = categorical_kl(old, logp) if kl_direction == "old_new" else categorical_kl(logp, old)
            kls.append(float(kl.detach()))
            if objective == "clip":
                loss = -torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv).mean()
            else:  # J^KL = E[ρ Â] − c D_KL(π_old ‖ π_θ)
                loss = -(ratio * adv).mean() + c * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            reached = float(categorical_kl(old, policy.action_params(S)[0].log_softmax(-1)))
        info.append({"reached": reached, "mean_before": sum(kls) / len(kls)})
        if objective == "adaptive_kl":
            d = reached if adapt_on == "reached" else sum(kls) / len(kls)
            c = 2 * c if d > 1.5 * kl_target else c / 2 if d < kl_target / 1.5 else c
        coefs.append(c)
    return actor_params(policy), coefs, info


def distance(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("fused", [True, False])
def test_clip_ppo_update_is_the_seeds_clipped_objective_on_the_drawn_samples(fused):
    agent, initial, samples, _ = run(2, clip_eps=0.1, fused_gradient=fused)
    expected, _, _ = reference(initial, samples, "clip", clip_eps=0.1)
    assert distance(actor_params(agent.policy), expected) < TOL
    unclipped, _, _ = reference(initial, samples, "clip", clip_eps=100.0)  # the clip must matter here
    assert distance(unclipped, expected) > 50 * TOL


def test_kl_ppo_penalises_the_kl_from_the_old_policy_to_the_new():
    # the seed's J^KL penalises D_KL(π_old ‖ π_θ); the reverse divergence has the same value and gradient at
    # θ = θ_old but not after the first step of an epoch, so four epochs tell them apart
    agent, initial, samples, _ = run(2, objective="kl", kl_coef=1.0)
    expected, _, _ = reference(initial, samples, "kl", kl_coef=1.0)
    assert distance(actor_params(agent.policy), expected) < TOL
    reverse, _, _ = reference(initial, samples, "kl", kl_coef=1.0, kl_direction="new_old")
    assert distance(reverse, expected) > 50 * TOL


def test_adaptive_kl_adapts_c_on_the_kl_the_update_reached():
    # Pick d_targ so that 1.5 d_targ lies halfway between the KL the first update reached and the mean KL
    # measured before each of its steps: the rule then changes c one way for the one and the other way (or not)
    # for the other. d_targ does not change the first update, so a first run finds both values.
    _, initial, samples, _ = run(1, objective="adaptive_kl", kl_coef=0.5)
    _, _, info = reference(initial, samples, "adaptive_kl", kl_coef=0.5)
    reached, before = info[0]["reached"], info[0]["mean_before"]
    assert abs(reached - before) > 0.3 * max(reached, before)  # (here the KL overshoots mid-update)
    target = (reached + before) / 3
    agent, initial, samples, coefs = run(2, objective="adaptive_kl", kl_coef=0.5, kl_target=target)
    expected, expected_coefs, _ = reference(initial, samples, "adaptive_kl", kl_coef=0.5, kl_target=target)
    assert expected_coefs[0] in (0.25, 1.0)  # halved or doubled after the first update
    assert coefs == pytest.approx(expected_coefs, rel=1e-9)
    assert distance(actor_params(agent.policy), expected) < TOL  # the second update used the new c
    _, wrong_coefs, _ = reference(initial, samples, "adaptive_kl", kl_coef=0.5, kl_target=target,
                                  adapt_on="mean_before")
    assert wrong_coefs[0] != expected_coefs[0]
