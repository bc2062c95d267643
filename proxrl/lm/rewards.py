"""GRPO's reward: the weighted sum of reward functions (the task's own, or ``module:function`` specs) and an
optional reward model (a local ``AutoModelForSequenceClassification`` folder) over each completion."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import ConfigError
from ..envs.text_tasks import load_callable
from . import require_transformers


class RewardError(ConfigError):
    """A reward function returned something that is not a finite number."""


class Rewards:
    """r = Σ_k w_k f_k(prompt, completion, **example) (+ w_rm · reward model score), each component logged as
    ``reward/<name>``."""

    def __init__(
        self,
        funcs: list[tuple[str, Callable[..., float], float]],
        reward_model: tuple[Any, Any] | None = None,
        model_weight: float = 1.0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.funcs, self.reward_model, self.model_weight, self.device = funcs, reward_model, model_weight, device

    @classmethod
    def build(
        cls,
        specs: tuple[str, ...],
        weights: tuple[float, ...],
        task_rewards: Mapping[str, Callable[..., float]],
        reward_model: str | None,
        model_weight: float,
        dtype: torch.dtype,
        device: torch.device,
    ) -> Rewards:
        """From the config: ``specs`` (``module:function``; empty: the task's own functions), one weight each
        (default 1), and a reward-model folder (or None)."""
        if specs:
            funcs = [(spec.rpartition(":")[2], load_callable(spec, "reward function")) for spec in specs]
        else:
            funcs = list(task_rewards.items())
        weights = weights or (1.0,) * len(funcs)
        if len(weights) != len(funcs):
            raise ConfigError(
                f"reward_weights has {len(weights)} entries for the task's {len(funcs)} reward "
                f"functions ({', '.join(n for n, _ in funcs)})"
            )
        named = [(name, f, float(w)) for (name, f), w in zip(funcs, weights, strict=True)]
        return cls(named, _load_reward_model(reward_model, dtype, device), model_weight, device)

    def score(self, examples: list[dict[str, str]], completions: list[str]) -> tuple[Tensor, dict[str, float]]:
        """The reward of each completion ``[len(completions)]`` (completion k answers ``examples[k // G]`` when
        there are fewer examples), and each component's mean."""
        repeat = len(completions) // len(examples)
        rows = [examples[k // repeat] for k in range(len(completions))]
        total = torch.zeros(len(completions))
        means: dict[str, float] = {}
        for name, func, weight in self.funcs:
            values = []
            for ex, text in zip(rows, completions, strict=True):
                value = func(completion=text, **ex)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise RewardError(
                        f"reward function {name!r} returned {value!r} for prompt {ex['prompt']!r}; "
                        "reward functions must return a finite float"
                    )
                values.append(float(value))
            component = torch.tensor(values)
            total += weight * component
            means[f"reward/{name}"] = component.mean().item()
        if self.reward_model is not None:
            model, tokenizer = self.reward_model
            enc = tokenizer(
                [ex["prompt"] + text for ex, text in zip(rows, completions, strict=True)],
                return_tensors="pt",
                padding=True,
                padding_side="right",
            ).to(self.device)
            with torch.no_grad():
                component = model(**enc).logits[:, 0].float().cpu()
            total += self.model_weight * component
            means["reward/reward_model"] = component.mean().item()
        return total, means


def _load_reward_model(path: str | None, dtype: torch.dtype, device: torch.device) -> tuple[Any, Any] | None:
    if path is None:
        return None
    transformers = require_transformers()
    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"reward_model={path!r} is not a local model folder (no config.json)")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        path, dtype=dtype, local_files_only=True
    ).to(device)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval().requires_grad_(False), tokenizer
