"""DAPO's dynamic sampling (Yu et al. 2025, "Dynamic Sampling"): a group whose G rewards are all equal has Â = 0 and
gives GRPO no gradient, so such groups are dropped and further rounds of P prompts are sampled until P groups that
vary remain, or ``max_sampling_rounds`` is reached, when dropped groups fill the batch in the order they came.

Data-parallel, each round is gathered whole on every process (:func:`whole_round`), so all keep the same groups and
stop after the same round, and each then takes its share of the chosen groups."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..advantages import flat_groups
from . import Generations
from .distributed import World

Scored = tuple[Tensor, dict[str, Tensor]]  # each completion's reward [P·G] and its components, per completion
Round = tuple[list[dict[str, str]], Generations, Scored]  # P prompts' examples, G completions of each, their scores
Group = tuple[int, int]  # (round, prompt) of one group


def flat_share(scored: Scored, group_size: int) -> float:
    """The share of a round's groups whose G rewards are all equal (``sampling/flat_groups_generated``)."""
    is_flat = flat_groups(scored[0].view(-1, group_size))
    return int(is_flat.sum()) / is_flat.numel()


def sample_groups(
    draw: Callable[[], Round], prompts: int, group_size: int, max_rounds: int, world: World, pad_token_id: int
) -> tuple[Round, dict[str, float]]:
    """Rounds of ``draw()`` (P = ``prompts`` prompts, G = ``group_size`` completions each, scored; this process's
    share of them) until P groups vary or ``max_rounds`` rounds are drawn; returns this process's share of the P
    groups kept (varied ones first, then flat ones to fill the batch) and the sampling stats (rounds, the share of
    flat groups generated, how many were dropped and how many kept)."""
    rounds: list[Round] = []
    kept: list[Group] = []  # the groups that vary
    flat: list[Group] = []
    while not rounds or (len(kept) < prompts and len(rounds) < max_rounds):
        examples, gens, scored = draw()
        if world.active:  # every process keeps the same groups, stops alike
            examples, gens, scored = whole_round(world, (examples, gens, scored), pad_token_id)
        is_flat = flat_groups(scored[0].view(-1, group_size)).tolist()
        for p in range(prompts):
            (flat if is_flat[p] else kept).append((len(rounds), p))
        rounds.append((examples, gens, scored))
    fill = max(0, prompts - len(kept))  # flat groups that fill the batch once the rounds run out
    chosen = (kept[:prompts] + flat[:fill])[world.shard(prompts)]  # whole rounds: this process's share
    stats = {
        "sampling/flat_groups_generated": len(flat) / (prompts * len(rounds)),
        "sampling/rounds": float(len(rounds)),
        "sampling/groups_dropped": float(len(flat) - fill),
        "sampling/flat_groups_kept": float(fill),
    }
    return join(rounds, chosen, group_size, pad_token_id), stats


def join(rounds: list[Round], chosen: list[Group], group_size: int, pad_token_id: int) -> Round:
    """The ``chosen`` groups of ``rounds`` as one batch, round by round (prompts and completions re-padded)."""
    parts = []
    for r, (examples, gens, (rewards, components)) in enumerate(rounds):
        groups = [p for rr, p in chosen if rr == r]
        if groups:
            rows = torch.tensor([p * group_size + g for p in groups for g in range(group_size)])
            parts.append(
                (
                    [examples[p] for p in groups],
                    gens.groups(groups),
                    rewards[rows],
                    {k: v[rows] for k, v in components.items()},
                )
            )
    examples = [ex for part in parts for ex in part[0]]
    joined = Generations.concat([part[1] for part in parts], pad_token_id)
    rewards = torch.cat([part[2] for part in parts])
    components = {k: torch.cat([part[3][k] for part in parts]) for k in parts[0][3]}
    return examples, joined, (rewards, components)


def whole_round(world: World, mine: Round, pad_token_id: int) -> Round:
    """Every process's share of a round of prompts, completions and scores, joined in rank order (the round one
    process would have drawn), on the CPU. Gathered whole rather than as flags so that the batch the rounds fill is
    the one-process batch, whichever process sampled a group."""
    examples, gens, (rewards, components) = mine
    cpu = (examples, gens.to("cpu"), rewards.cpu(), {k: v.cpu() for k, v in components.items()})
    parts = world.gather_objects(cpu, "the groups of a dynamic-sampling round")
    joined = Generations.concat([part[1] for part in parts], pad_token_id)
    whole = (
        torch.cat([part[2] for part in parts]),
        {k: torch.cat([part[3][k] for part in parts]) for k in components},
    )
    return [ex for part in parts for ex in part[0]], joined, whole
