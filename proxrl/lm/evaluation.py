"""Held-out evaluation on a text task: exact-match accuracy of greedy and of sampled completions
(:func:`held_out_accuracy`), and the record a trainer keeps of it (:class:`HeldOutAccuracy`: at the start of
training, after the warm-up, and the latest)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .text_tasks import PromptTask, exact_match
from .scoring import accuracy, mean_scores
from .config import LanguageModelConfig
from .distributed import SINGLE, World


def held_out_accuracy(
    policy: Any,
    tokenizer: Any,
    task: PromptTask,
    cfg: LanguageModelConfig,
    device: torch.device,
    examples: int | None = None,
    samples: int | None = None,
    world: World = SINGLE,
) -> dict[str, float | None]:
    """On the first ``examples`` (default ``cfg.eval_examples``) of the task's held-out prompts: ``accuracy``,
    greedy exact match; with ``samples`` k > 0 (default ``cfg.eval_samples``) also ``sampled_accuracy``, of k
    completions per prompt sampled at the training temperature and top-p; ``examples``: how many prompts. Runs on
    a fork of torch's random state, so that training's random stream does not depend on evaluation. Data-parallel
    (``world``): each process scores its share of the prompts and the means are the whole set's; ``accuracy`` is
    None where the task has no held-out prompts."""
    everything = task.held_out()[: examples or cfg.eval_examples]
    if not everything:  # a dataset without an eval dataset: nothing to measure
        return {"accuracy": None, "examples": 0}
    held_out = world.split(everything)
    score = task.accuracy
    k = cfg.eval_samples if samples is None else samples
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        world.seed_own_stream()  # data-parallel: each process's share gets draws of its own
        out = {
            **mean_scores(
                policy,
                tokenizer,
                held_out,
                cfg.max_new_tokens,
                {"accuracy": score, **{f"eval/{k}": f for k, f in task.metrics.items()}},
            ),
            "examples": len(held_out),
        }
        if k:
            out["sampled_accuracy"] = accuracy(
                policy,
                tokenizer,
                held_out,
                cfg.max_new_tokens,
                score,
                samples=k,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
            )
    measured: dict[str, float | None] = {**(_whole_set(out, world) if world.active else out)}
    return measured


def _whole_set(out: dict[str, float], world: World) -> dict[str, float]:
    """The means of the processes' shares (``out``: this one's means over its ``examples``), weighted by size."""
    keys = sorted(k for k in out if k != "examples")
    n = out["examples"]
    totals = world.all_sum(torch.tensor([out[k] * n for k in keys] + [n], dtype=torch.float64), "evaluation")
    return {**{k: totals[i].item() / totals[-1].item() for i, k in enumerate(keys)}, "examples": totals[-1].item()}


def accuracy_label(task: PromptTask) -> str:
    """How a task's held-out accuracy is named in messages: exact match, or its score function's name."""
    score = task.accuracy
    return "exact-match accuracy" if score is exact_match else f"accuracy ({getattr(score, '__name__', 'eval_metric')})"


def describe_accuracy(
    result: Mapping[str, float | None], name: str, samples: int, label: str = "exact-match accuracy"
) -> str:
    """One line for :func:`held_out_accuracy`'s ``result`` (``samples``: its k), headed by ``name``; ``label``
    names the score (:func:`accuracy_label`)."""
    if result["accuracy"] is None:
        return f"{name}: no held-out prompts (give an eval dataset to measure accuracy)"
    sampled = (
        f"; sampled ({samples} per prompt) {result['sampled_accuracy']:.3f}" if "sampled_accuracy" in result else ""
    )
    return f"{name}: greedy {label} {result['accuracy']:.3f} on {result['examples']:.0f} held-out prompts{sampled}"


@dataclass
class HeldOutAccuracy:
    """Greedy and sampled held-out accuracy at the start of training (``warmup``, ``warmup_sampled``) and the
    latest (``last``, ``last_sampled``); None where not measured (sampled: ``eval_samples`` = 0)."""

    warmup: float | None = None
    last: float | None = None
    warmup_sampled: float | None = None
    last_sampled: float | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)  # the task's other held-out scores, latest

    def record(self, result: Mapping[str, float | None], start: bool = False) -> None:
        """Keep :func:`held_out_accuracy`'s ``result`` as the latest (and, with ``start``, as the start's); the
        task's other held-out scores (``eval/<name>``) as the latest."""
        self.last, self.last_sampled = result["accuracy"], result.get("sampled_accuracy")
        self.metrics = {k: v for k, v in result.items() if k.startswith("eval/")}
        if start:
            self.warmup, self.warmup_sampled = self.last, self.last_sampled

    def describe(self, temperature: float, samples: int, label: str = "exact-match accuracy") -> list[str]:
        """Start and latest accuracy (named by ``label``), greedy then (if measured) sampled, for a summary."""
        lines = [f"held-out {label} (greedy) {_fmt(self.warmup)} at the start, {_fmt(self.last)} at the end"]
        if self.last_sampled is not None:
            lines.append(
                f"sampled at temperature {temperature} ({samples} per prompt): "
                f"{_fmt(self.warmup_sampled)} at the start, {_fmt(self.last_sampled)} at the end"
            )
        return lines

    def state_dict(self) -> dict[str, float | None]:
        """The four accuracies as checkpoint keys (top-level keys of a trainer's state)."""
        return {
            "last_accuracy": self.last,
            "warmup_accuracy": self.warmup,
            "last_sampled_accuracy": self.last_sampled,
            "warmup_sampled_accuracy": self.warmup_sampled,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s keys."""
        self.last, self.warmup = state["last_accuracy"], state["warmup_accuracy"]
        self.last_sampled, self.warmup_sampled = state["last_sampled_accuracy"], state["warmup_sampled_accuracy"]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
