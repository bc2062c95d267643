"""A supervised warm-up: cross-entropy on the task's answers, so that GRPO starts from a policy whose early rewards
are not all zero."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import torch

from .scoring import accuracy


def supervised_warmup(
    model: Any,
    tokenizer: Any,
    sample: Callable[[random.Random, int], list[dict[str, str]]],
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    target: float = 0.0,
    score: Callable[..., float] | None = None,
    max_new_tokens: int = 8,
    check_every: int = 50,
) -> list[float]:
    """Cross-entropy on ``target + <eos>`` (an example's ``target``, else its ``answer``) given ``prompt`` for
    ``steps`` Adam steps on freshly sampled examples, so that GRPO starts from a policy whose early rewards are not
    all zero. Returns the losses."""
    rng = random.Random(seed)
    # probe prompts for ``target``: their own stream, so the training batches are those of a warm-up without it
    probe = sample(random.Random(seed + 7919), 200) if target > 0 and score is not None else None
    device = next(model.parameters()).device
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        batch = sample(rng, batch_size)
        prompts = tokenizer([ex["prompt"] for ex in batch], add_special_tokens=False)["input_ids"]
        answers = tokenizer([ex.get("target", ex["answer"]) for ex in batch], add_special_tokens=False)["input_ids"]
        rows = [p + a + [tokenizer.eos_token_id] for p, a in zip(prompts, answers, strict=True)]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full_like(ids, -100)
        attn = torch.zeros_like(ids)
        for i, (row, p) in enumerate(zip(rows, prompts, strict=True)):  # right-padded; loss on the answer only
            ids[i, : len(row)] = torch.tensor(row)
            labels[i, len(p) : len(row)] = ids[i, len(p) : len(row)]
            attn[i, : len(row)] = 1
        for group in opt.param_groups:  # cosine decay to 10 %
            group["lr"] = lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / max(1, steps))))
        loss = model(input_ids=ids.to(device), attention_mask=attn.to(device), labels=labels.to(device)).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if probe is not None and score is not None and (step + 1) % check_every == 0:
            with torch.random.fork_rng():
                reached = accuracy(model, tokenizer, probe, max_new_tokens, score) >= target
            model.train()
            if reached:
                break
    opt.zero_grad(set_to_none=True)  # the model goes on to other training: leave it no gradient of ours
    return losses
