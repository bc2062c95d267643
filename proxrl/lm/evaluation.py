"""Held-out evaluation on a text task: exact-match accuracy of greedy and of sampled completions
(:func:`held_out_accuracy`), and the record a trainer keeps of it (:class:`HeldOutAccuracy`: at the start of
training, after the warm-up, and the latest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..envs.text_tasks import exact_match
from . import accuracy


def held_out_accuracy(policy: Any, tokenizer: Any, examples: list[dict[str, str]], max_new_tokens: int,
                      samples: int = 0, temperature: float = 1.0, top_p: float = 1.0,
                      device: torch.device | None = None) -> dict[str, float]:
    """``accuracy``: greedy exact match on ``examples``; with ``samples`` k > 0 also ``sampled_accuracy``, of k
    completions per prompt sampled at ``temperature`` and ``top_p``; ``examples``: how many. Runs on a fork of
    torch's random state, so that training's random stream does not depend on evaluation."""
    with torch.random.fork_rng(devices=[device] if device is not None and device.type == "cuda" else []):
        out = {"accuracy": accuracy(policy, tokenizer, examples, max_new_tokens, exact_match),
               "examples": len(examples)}
        if samples:
            out["sampled_accuracy"] = accuracy(policy, tokenizer, examples, max_new_tokens, exact_match,
                                               samples=samples, temperature=temperature, top_p=top_p)
    return out


@dataclass
class HeldOutAccuracy:
    """Greedy and sampled held-out accuracy at the start of training (``warmup``, ``warmup_sampled``) and the
    latest (``last``, ``last_sampled``); None where not measured (sampled: ``eval_samples`` = 0)."""

    warmup: float | None = None
    last: float | None = None
    warmup_sampled: float | None = None
    last_sampled: float | None = None

    def record(self, result: dict[str, float], start: bool = False) -> None:
        """Keep :func:`held_out_accuracy`'s ``result`` as the latest (and, with ``start``, as the start's)."""
        self.last, self.last_sampled = result["accuracy"], result.get("sampled_accuracy")
        if start:
            self.warmup, self.warmup_sampled = self.last, self.last_sampled

    def describe(self, temperature: float, samples: int) -> list[str]:
        """Start and latest accuracy, greedy then (if measured) sampled, for a summary."""
        lines = [f"held-out exact-match accuracy (greedy) {_fmt(self.warmup)} at the start, {_fmt(self.last)} at "
                 "the end"]
        if self.last_sampled is not None:
            lines.append(f"sampled at temperature {temperature} ({samples} per prompt): "
                         f"{_fmt(self.warmup_sampled)} at the start, {_fmt(self.last_sampled)} at the end")
        return lines

    def state_dict(self) -> dict[str, float | None]:
        """The four accuracies as checkpoint keys (top-level keys of a trainer's state)."""
        return {"last_accuracy": self.last, "warmup_accuracy": self.warmup,
                "last_sampled_accuracy": self.last_sampled, "warmup_sampled_accuracy": self.warmup_sampled}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s keys."""
        self.last, self.warmup = state["last_accuracy"], state["warmup_accuracy"]
        self.last_sampled, self.warmup_sampled = state["last_sampled_accuracy"], state["warmup_sampled_accuracy"]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
