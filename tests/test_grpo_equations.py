"""A GRPO step against the seed's equations, redone by hand on real sampled completions.

The trainer's ``update(examples, gens)`` takes one generation batch (G completions of each of P prompts, sampled
here by the real sampler at temperature T) and a reward the test can recompute. The test then rebuilds the step
from the formulas with its own forward passes through the Hugging Face model:

    Â_i = (r_i − mean(r_group)) / (std(r_group) + 1e-4)          within each prompt's group of G
    log π(o_t | q, o_<t) = log_softmax(logits / T)                  the policy that sampled at temperature T
    per token: −min(ρ Â, clip(ρ, 1 − ε_low, 1 + ε_high) Â) + β (π_ref/π_θ − ln(π_ref/π_θ) − 1),  ρ = π_θ / π_old
        (GSPO, importance_sampling_level=sequence: ρ is the completion's exp(mean_t ln(π_θ / π_old)))
    aggregated per ``loss_type`` over M = 2 micro-batches; μ AdamW steps with π_old fixed at the sampling policy

and requires the trainer's weights to end where the reference's do. The reference model differs from the policy
(the policy is perturbed after it is copied), so the KL term matters from the first step. Each wrong variant the
mutation audit named — groups mixing prompts, π_ref = π_θ, π_old recomputed every pass, ε_high ignored, no
temperature in the log-probs, another loss type, the other importance-sampling level — is shown to end measurably
elsewhere.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch

from proxrl import GRPO, lm
from toy_envs import prompt_and_length_reward

P, G, L, T = 3, 4, 6, 0.7
EPS_LOW, EPS_HIGH, BETA, MU, LR = 0.05, 0.3, 0.2, 3, 1e-2
M = 2  # micro-batches (grad_accum_steps): bnpo normalises each by its own token count
# the gradients agree to 2e-7; three Adam steps at lr 1e-2 (which normalise near-zero gradient entries) leave the
# parameters up to 2.5e-5 apart (bnpo, measured), every wrong variant > 50 × TOL or 1 % of the loss away
TOL = 5e-5


def completion_logps(model, gens: lm.Generations, temperature: float) -> torch.Tensor:
    """log π(o_t | q, o_<t) of every completion token ``[B, L]`` by the model's own forward pass, with the
    position ids of a left-padded prompt (counted over attended tokens)."""
    positions = (gens.attention_mask.cumsum(1) - 1).clamp(min=0)
    logits = model(input_ids=gens.input_ids, attention_mask=gens.attention_mask, position_ids=positions).logits
    logits = logits[:, gens.prompt_len - 1 : -1].float() / temperature
    targets = gens.input_ids[:, gens.prompt_len :]
    return logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, loss_type: str) -> torch.Tensor:
    if loss_type == "grpo":  # mean over each completion's tokens, then over completions
        return ((per_token * mask).sum(1) / mask.sum(1)).mean()
    if loss_type == "bnpo":  # the mean over each micro-batch's tokens, averaged over the micro-batches
        parts = zip(per_token.chunk(M), mask.chunk(M), strict=True)
        return sum((v * m).sum() / m.sum() for v, m in parts) / M
    if loss_type == "dapo":  # one mean over every token of the batch
        return (per_token * mask).sum() / mask.sum()
    return (per_token * mask).sum() / (mask.shape[0] * L)  # dr_grpo: B · max_new_tokens


def reference_step(
    policy,
    ref_model,
    gens,
    rewards: torch.Tensor,
    loss_type: str,
    level: str = "token",
    *,
    grouping: str = "prompt",
    reference: str = "ref",
    old: str = "fixed",
    eps_high: float = EPS_HIGH,
    temperature: float = T,
):
    """The seed's GRPO step on a copy of ``policy``; returns its parameters and the loss averaged over the μ
    passes. The keyword arguments select the wrong variants the tests rule out."""
    model = copy.deepcopy(policy)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR, eps=1e-8, weight_decay=0.0)
    groups = rewards.view(P, G) if grouping == "prompt" else rewards.view(G, P).T  # "mixed": groups across prompts
    adv = (groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + 1e-4)
    adv = (adv if grouping == "prompt" else adv.T).reshape(-1, 1)
    mask = gens.mask.float()
    with torch.no_grad():
        ref_logp = completion_logps(ref_model if reference == "ref" else model, gens, temperature)
        old_logp = completion_logps(model, gens, temperature)
    losses = []
    for _ in range(MU):
        logp = completion_logps(model, gens, temperature)
        pi_old = old_logp if old == "fixed" else logp.detach()
        log_ratio = logp - pi_old
        if level == "sequence":  # GSPO: one length-normalised ratio per completion, for each of its tokens
            log_ratio = (log_ratio * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True)
        ratio = log_ratio.exp()
        surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - EPS_LOW, 1 + eps_high) * adv)
        log_r = ref_logp - logp
        loss = aggregate(-surrogate.expand_as(logp) + BETA * (log_r.exp() - log_r - 1), mask, loss_type)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return [p.detach().clone() for p in model.parameters()], sum(losses) / len(losses)


def distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


@pytest.mark.parametrize(
    "loss_type,level", [*((t, "token") for t in LOSS_TYPES), ("grpo", "sequence"), ("dapo", "sequence")]
)
def test_grpo_step_is_the_seeds_objective_on_sampled_completions(loss_type, level):
    torch.manual_seed(0)
    agent = GRPO(
        "addition",
        warmup_steps=40,
        tiny_hidden_size=32,
        tiny_layers=1,
        tiny_heads=2,
        group_size=G,
        prompts_per_step=P,
        max_new_tokens=L,
        temperature=T,
        clip_eps=EPS_LOW,
        clip_eps_high=EPS_HIGH,
        beta=BETA,
        num_iterations=MU,
        lr=LR,
        max_grad_norm=0.0,
        loss_type=loss_type,
        importance_sampling_level=level,
        grad_accum_steps=M,
        reward_funcs=("toy_envs:prompt_and_length_reward",),
        progress=False,
        tensorboard=False,
    )
    reference_model = copy.deepcopy(agent.policy)  # the frozen π_ref the trainer copied at construction
    with torch.no_grad():  # move π_θ away from π_ref so that the KL term has a gradient from the first step
        for p in agent.policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    initial = copy.deepcopy(agent.policy)
    examples = agent.task.sample(random.Random(0), P)
    gens = lm.generate(agent.policy, agent.tokenizer, [ex["prompt"] for ex in examples], G, L, T)
    lengths = gens.mask.sum(1)
    assert lengths.min() < lengths.max()  # completions of different lengths: the aggregations differ
    rewards = torch.tensor(
        [prompt_and_length_reward(examples[k // G]["prompt"], text) for k, text in enumerate(gens.texts)]
    )

    for p in agent.policy.parameters():  # a gradient left on the weights (a user's backward) must not leak in
        p.grad = torch.ones_like(p)
    got_rewards, stats = agent.update(examples, gens)

    torch.testing.assert_close(got_rewards, rewards, rtol=0, atol=0)
    flat = sum(len(set(rewards[p * G : (p + 1) * G].tolist())) == 1 for p in range(P)) / P
    assert stats["flat_groups"] == flat
    assert stats["kl"] > 1e-4  # π_θ ≠ π_ref
    assert stats["clip_frac"] > 0  # passes 2 and 3 clip some tokens
    expected, expected_loss = reference_step(initial, reference_model, gens, rewards, loss_type, level)
    assert distance([p.detach() for p in agent.policy.parameters()], expected) < TOL
    assert stats["loss"] == pytest.approx(expected_loss, rel=1e-4)
    wrong = {
        "groups mix prompts": dict(grouping="mixed"),
        "π_ref = π_θ": dict(reference="policy"),
        "π_old recomputed every pass": dict(old="recomputed"),
        "ε_high ignored": dict(eps_high=EPS_LOW),
        "no temperature in log π": dict(temperature=1.0),
    }
    wrong.update({f"loss_type {other}": {"loss_type": other} for other in LOSS_TYPES if other != loss_type})
    wrong["the other importance-sampling level"] = {"level": "token" if level == "sequence" else "sequence"}
    for name, variant in wrong.items():  # each ends elsewhere, or (loss types that differ by a constant
        # factor, to which Adam is nearly blind) reports another loss
        params, loss = reference_step(
            initial, reference_model, gens, rewards, **{"loss_type": loss_type, "level": level, **variant}
        )
        assert distance(params, expected) > 50 * TOL or abs(loss - expected_loss) > 1e-2 * abs(expected_loss), name
