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
from typing import Any

import pytest
import torch

import toy_envs  # noqa: F401 - registers proxrl_test/ envs
from proxrl import PPO
from toy_envs import RecordingBandit

S = torch.ones(1, 1)  # the bandit's only observation
TOL = 2e-5  # float32 Adam (fused vs reference loop), a few steps
BASE = dict(
    env="proxrl_test/RecordingBandit-v0",
    num_envs=4,
    num_steps=16,
    lr=0.05,
    anneal_lr=False,
    max_grad_norm=0.0,
    ent_coef=0.0,
    seed=3,
    progress=False,
)
PPO_BASE = dict(num_minibatches=1, num_epochs=4)


def actor_params(policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.named_parameters() if n.startswith("actor")}


def run(
    iterations: int, cls: type = PPO, **overrides
) -> tuple[Any, torch.nn.Module, list[list[tuple[int, float]]], list[float]]:
    """Train ``iterations`` iterations; returns the agent, a copy of its initial policy, the samples of each
    iteration and (PPO) c after each iteration. The torch RNG state at the start of ``learn`` is kept as
    ``agent.rng_at_learn`` (acting samples with numpy, so an update's minibatch shuffles are its first torch draws)."""
    kwargs = {**BASE, **(PPO_BASE if cls is PPO else {}), **overrides}
    agent = cls(**kwargs)
    initial = copy.deepcopy(agent.policy)
    samples: list[list[tuple[int, float]]] = []
    coefs: list[float] = []
    RecordingBandit.steps.clear()

    def after(a: Any, row: dict) -> None:
        samples.append(list(RecordingBandit.steps))
        RecordingBandit.steps.clear()
        coefs.append(getattr(a, "kl_coef", 0.0))

    agent.rng_at_learn = torch.get_rng_state()

    agent.learn(iterations * kwargs["num_envs"] * kwargs["num_steps"], callback=after)
    assert all(len(s) == 32 for s in samples)  # 16 steps × 4 envs, every other step a reset step
    return agent, initial, samples, coefs


def categorical_kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """D_KL(p ‖ q) = Σ_a p(a) (log p(a) − log q(a))."""
    return (logp.exp() * (logp - logq)).sum()


def normalised(adv: torch.Tensor) -> torch.Tensor:
    """(Â − mean) / (std + 1e-8) of a (mini)batch that holds more than one reward. The reference never trains the
    critic, so its Â = r − V(s) has another V than the trainer's; normalising removes V only when Â varies. Were
    Â one value, Â − mean(Â) would be float rounding (0 or ±1 ulp, by V's last bits) over a std of 0 or ~1e-7:
    noise of order 1 that the trainer and the reference draw differently."""
    assert adv.unique().numel() > 1, "a (mini)batch of one action: π collapsed (lr too high, or a wrong update)"
    return (adv - adv.mean()) / (adv.std() + 1e-8)


def reference(
    initial: torch.nn.Module,
    samples: list[list[tuple[int, float]]],
    objective: str,
    clip_eps: float = 0.2,
    kl_coef: float = 1.0,
    kl_target: float = 0.01,
    epochs: int = 4,
    lr: float = 0.05,
    adam_eps: float = 1e-5,
    kl_direction: str = "old_new",
    adapt_on: str = "reached",
    minibatches: int = 1,
    rng: torch.Tensor | None = None,
    norm: str = "minibatch",
) -> tuple[dict, list[float], list[dict]]:
    """The seed's PPO update, iteration by iteration; returns the actor's parameters, c after each iteration and
    per-iteration diagnostics (the KL reached, the mean KL before each step). With ``minibatches`` > 1 each epoch
    shuffles the samples with torch's RNG (from state ``rng``) and normalises Â per minibatch (``norm``)."""
    if rng is not None:
        torch.set_rng_state(rng)
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
        n, size = len(batch), len(batch) // minibatches
        if minibatches == 1:
            adv = normalised(adv)
        kls = []
        for _ in range(epochs):
            perm = torch.arange(n) if minibatches == 1 else torch.randperm(n)
            for start in range(0, n, size):
                idx = perm[start : start + size]
                a = adv[idx]
                if minibatches > 1 and norm == "minibatch":
                    a = normalised(a)
                logp = policy.action_params(S)[0].log_softmax(-1)
                ratio = (logp[actions[idx]] - old[actions[idx]]).exp()
                kl = categorical_kl(old, logp) if kl_direction == "old_new" else categorical_kl(logp, old)
                kls.append(float(kl.detach()))
                if objective == "clip":
                    loss = -torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a).mean()
                else:  # J^KL = E[ρ Â] − c D_KL(π_old ‖ π_θ)
                    loss = -(ratio * a).mean() + c * kl
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
    # lr 0.01: at 0.05 the first update puts π on action 0 and the second rollout is all action 0 (see normalised)
    agent, initial, samples, _ = run(2, clip_eps=0.1, fused_gradient=fused, lr=0.01)
    expected, _, _ = reference(initial, samples, "clip", clip_eps=0.1, lr=0.01)
    assert distance(actor_params(agent.policy), expected) < TOL
    unclipped, _, _ = reference(initial, samples, "clip", clip_eps=100.0, lr=0.01)  # the clip must matter here
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
    _, wrong_coefs, _ = reference(
        initial, samples, "adaptive_kl", kl_coef=0.5, kl_target=target, adapt_on="mean_before"
    )
    assert wrong_coefs[0] != expected_coefs[0]


@pytest.mark.parametrize("fused", [True, False])
def test_minibatch_advantages_are_normalised_per_minibatch(fused):
    # 4 minibatches of 8: each epoch shuffles with torch's RNG, and Â is normalised within each minibatch
    # lr 0.01: at 0.05 the second rollout is all one action, and so every minibatch (see normalised)
    agent, initial, samples, _ = run(2, clip_eps=0.1, fused_gradient=fused, num_minibatches=4, num_epochs=2, lr=0.01)
    mb = dict(clip_eps=0.1, epochs=2, minibatches=4, rng=agent.rng_at_learn, lr=0.01)
    expected, _, _ = reference(initial, samples, "clip", **mb)
    assert distance(actor_params(agent.policy), expected) < TOL
    raw, _, _ = reference(initial, samples, "clip", **mb, norm="none")
    assert distance(raw, expected) > 50 * TOL


def offpolicy_reference(
    initial: torch.nn.Module,
    samples: list[list[tuple[int, float]]],
    replay_ratio: int,
    max_weight: float = 1.0,
    lr: float = 0.05,
    adam_eps: float = 1e-5,
    vf_coef: float = 0.5,
    baseline: float = -1.0,
    log_rho_sign: float = 1.0,
    norm_adv: bool = False,
) -> dict:
    """Off-policy PG with a replay memory of one rollout, on one-step episodes: 1 + replay_ratio Adam steps per
    rollout on −E[w Â ln π] + c_v ½ E[(V − v)²] with w = min(π/β, c̄), Â = Q̂ − V(s), Q̂ = r (the episode ends),
    and the V-trace target v = V + min(ρ̄, π/β) (r − V). Returns the parameters of actor and critic."""
    policy = copy.deepcopy(initial)
    opt = torch.optim.Adam(policy.parameters(), lr=lr, eps=adam_eps)
    for batch in samples:
        actions = torch.tensor([a for a, _ in batch])
        rewards = torch.tensor([r for _, r in batch])
        with torch.no_grad():
            behaviour = policy.action_params(S)[0].log_softmax(-1)[actions]  # β: the policy that collected
        for _ in range(1 + replay_ratio):
            logp = policy.action_params(S)[0].log_softmax(-1)[actions]
            value = policy.value(S)[0]
            with torch.no_grad():
                ratio = (log_rho_sign * (logp - behaviour)).exp()
                v_target = value + ratio.clamp(max=max_weight) * (rewards - value)
                adv = rewards + baseline * value
                if norm_adv:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                w = (logp - behaviour).exp().clamp(max=max_weight)
            loss = -(w * adv * logp).mean() + vf_coef * 0.5 * ((value - v_target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {n: p.detach().clone() for n, p in policy.named_parameters()}


def test_offpolicy_pg_update_is_the_truncated_importance_weighted_gradient_with_a_vtrace_critic():
    from proxrl import OffPolicyPG

    # one rollout in memory, replayed twice after its own step: the replays are off-policy (π ≠ β). Â is not
    # normalised here: with one state, normalising would remove the baseline V(s) whatever its sign
    agent, initial, samples, _ = run(2, cls=OffPolicyPG, replay_size=1, replay_ratio=2, max_weight=1.0, norm_adv=False)
    expected = offpolicy_reference(initial, samples, replay_ratio=2)
    got = {n: p.detach() for n, p in agent.policy.named_parameters()}
    assert distance(got, expected) < TOL
    for wrong in (dict(baseline=1.0), dict(log_rho_sign=-1.0)):  # Q̂ + V; ρ = β/π in V-trace
        assert distance(offpolicy_reference(initial, samples, replay_ratio=2, **wrong), expected) > 50 * TOL, wrong


def critic_reference(
    initial: torch.nn.Module,
    samples: list[list[tuple[int, float]]],
    clip: float | None,
    epochs: int = 4,
    lr: float = 0.05,
    adam_eps: float = 1e-5,
    vf_coef: float = 0.5,
) -> dict:
    """PPO's critic on one-step episodes (R̂ = Â + V_old = r): Adam on c_v ½ E[(V − R̂)²], or with ``clip`` the
    clipped form ½ E[max((V − R̂)², (V_old + clip(V − V_old, −ε, ε) − R̂)²)]; returns the critic's parameters."""
    policy = copy.deepcopy(initial)
    critic = [p for n, p in policy.named_parameters() if n.startswith("critic")]
    opt = torch.optim.Adam(critic, lr=lr, eps=adam_eps)
    for batch in samples:
        returns = torch.tensor([r for _, r in batch])
        with torch.no_grad():
            v_old = policy.value(S)[0]
        for _ in range(epochs):
            v = policy.value(S)[0].expand_as(returns)
            err = (v - returns) ** 2
            if clip is not None:
                err = torch.maximum(err, (v_old + (v - v_old).clamp(-clip, clip) - returns) ** 2)
            loss = vf_coef * 0.5 * err.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {n: p.detach().clone() for n, p in policy.named_parameters() if n.startswith("critic")}


@pytest.mark.parametrize("fused", [True, False])
def test_clip_vloss_clips_the_critics_step_around_its_rollout_values(fused):
    # V moves past ±ε around its rollout value within the epochs, so the clipped error decides the later steps
    agent, initial, samples, _ = run(2, clip_eps=0.1, clip_vloss=True, fused_gradient=fused)
    expected = critic_reference(initial, samples, clip=0.1)
    got = {n: p.detach() for n, p in agent.policy.named_parameters() if n.startswith("critic")}
    assert distance(got, expected) < TOL
    assert distance(critic_reference(initial, samples, clip=None), expected) > 50 * TOL  # measured: 0.049
