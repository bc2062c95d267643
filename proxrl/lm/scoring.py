"""Mean scores of a model's completions of examples: exact-match accuracy of greedy completions, or pass@1 of the
sampling policy from k draws per prompt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .generation import generate


@torch.no_grad()
def mean_scores(
    model: Any,
    tokenizer: Any,
    examples: list[dict[str, str]],
    max_new_tokens: int,
    scores: dict[str, Callable[..., float]],
    batch_size: int = 100,
    samples: int = 0,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> dict[str, float]:
    """The mean of each ``score(prompt, completion, **example)`` of ``scores`` over greedy completions of
    ``examples`` (exact-match accuracy for ``text_tasks.exact_match``); with ``samples`` k > 0, over k completions
    per prompt sampled at ``temperature`` and ``top_p`` instead (pass@1 of the sampling policy, from k draws)."""
    totals = dict.fromkeys(scores, 0.0)
    repeat = max(1, samples)
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        gens = generate(
            model,
            tokenizer,
            [ex["prompt"] for ex in chunk],
            repeat,
            max_new_tokens,
            temperature,
            top_p,
            greedy=samples == 0,
        )
        for name, score in scores.items():
            totals[name] += sum(score(completion=text, **chunk[k // repeat]) for k, text in enumerate(gens.texts))
    return {name: total / max(1, len(examples) * repeat) for name, total in totals.items()}


def accuracy(
    model: Any,
    tokenizer: Any,
    examples: list[dict[str, str]],
    max_new_tokens: int,
    score: Callable[..., float],
    batch_size: int = 100,
    samples: int = 0,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> float:
    """:func:`mean_scores` of the one ``score``."""
    args = (model, tokenizer, examples, max_new_tokens, {"score": score}, batch_size, samples, temperature, top_p)
    return mean_scores(*args)["score"]
