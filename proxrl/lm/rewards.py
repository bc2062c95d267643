"""GRPO's reward: the weighted sum of reward functions (the task's own, or ``module:function`` specs) and an
optional reward model (a local ``AutoModelForSequenceClassification`` folder) over each completion."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .tasks import load_callable
from .models import require_transformers


class RewardError(ConfigError):
    """A reward function returned something that is not a finite number."""


class RewardModel:
    """A local ``AutoModelForSequenceClassification`` folder as a reward: its first logit on each rendered prompt +
    completion text."""

    def __init__(self, model: Any, tokenizer: Any, device: torch.device | str) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device

    def score(self, prompts: list[str], completions: list[str]) -> list[float]:
        """The model's score of each ``prompts[k] + completions[k]``."""
        enc = self.tokenizer(
            [p + c for p, c in zip(prompts, completions, strict=True)],
            return_tensors="pt",
            padding=True,
            padding_side="right",
        ).to(self.device)
        with torch.no_grad():
            return [float(v) for v in self.model(**enc).logits[:, 0].float().cpu()]


class Rewards:
    """r = Σ_k w_k f_k(prompt, completion, **example) (reward models among the f_k), each component logged as
    ``reward/<name>``."""

    def __init__(
        self,
        funcs: list[tuple[str, Callable[..., Any] | RewardModel, float]],
        reward_model: RewardModel | None = None,
        model_weight: float = 1.0,
    ) -> None:
        self.funcs = funcs + ([("reward_model", reward_model, model_weight)] if reward_model is not None else [])

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
        """From the config: ``specs`` (``module:function``, or a local reward-model folder as TRL takes a model in
        ``reward_funcs``; empty: the task's own functions), one weight each (default 1), and a reward-model folder
        (or None)."""
        funcs: list[tuple[str, Callable[..., Any] | RewardModel]]
        if specs:
            funcs = [_reward_of(spec, dtype, device) for spec in specs]
        else:
            funcs = list(task_rewards.items())
        if not funcs and reward_model is None:
            raise ConfigError("nothing scores the completions: set reward_funcs (a dataset brings no reward functions)")
        weights = weights or (1.0,) * len(funcs)
        if len(weights) != len(funcs):
            raise ConfigError(
                f"reward_weights has {len(weights)} entries for the task's {len(funcs)} reward "
                f"functions ({', '.join(n for n, _ in funcs)})"
            )
        named = [(name, f, float(w)) for (name, f), w in zip(funcs, weights, strict=True)]
        model = _load_reward_model(reward_model, dtype, device) if reward_model is not None else None
        return cls(named, model, model_weight)

    def score(
        self,
        examples: list[dict[str, Any]],
        completions: list[str],
        completion_ids: list[list[int]] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The reward of each completion ``[len(completions)]`` (completion k answers ``examples[k // G]`` when
        there are fewer examples), and each component ``reward/<name>`` per completion (unweighted; NaN where a
        function gave no score). A function with TRL's signature (:func:`takes_batches`) is called once on the
        batch, the others once per completion; ``None`` is no score from that function, and the reward is the
        weighted sum of the scores given (TRL's nansum)."""
        repeat = len(completions) // len(examples)
        rows = [examples[k // repeat] for k in range(len(completions))]
        columns = [columns_of(ex) for ex in examples]
        row_columns = [columns[k // repeat] for k in range(len(completions))]
        total = torch.zeros(len(completions))
        parts: dict[str, Tensor] = {}
        for name, func, weight in self.funcs:
            if isinstance(func, RewardModel):
                values: list[Any] = func.score([ex["prompt"] for ex in rows], completions)
            elif takes_batches(func):
                values = call_batched(func, row_columns, completions, completion_ids, "_messages" in examples[0])
            else:
                values = [func(completion=text, **c) for c, text in zip(row_columns, completions, strict=True)]
            if len(values) != len(completions):
                raise RewardError(
                    f"reward function {name!r} returned {len(values)} values for {len(completions)} completions"
                )
            for ex, value in zip(rows, values, strict=True):
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise RewardError(
                        f"reward function {name!r} returned {value!r} for prompt {ex['prompt']!r}; "
                        "reward functions must return a finite float (or None: no score)"
                    )
            component = torch.tensor([math.nan if v is None else float(v) for v in values])
            total += torch.nan_to_num(weight * component, nan=0.0)
            parts[f"reward/{name}"] = component
        return total, parts


def takes_batches(func: Callable[..., Any]) -> bool:
    """Whether ``func`` has TRL's reward signature ``f(prompts, completions, completion_ids, **kwargs) ->
    list[float | None]`` (a parameter named ``prompts``, ``completions`` or ``completion_ids``; it may be an
    ``async def``) rather than proxrl's per-completion
    ``f(prompt, completion, **example) -> float``."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # a builtin or C callable: per completion
        return False
    return any(name in params for name in ("completions", "prompts", "completion_ids"))


def columns_of(example: dict[str, Any]) -> dict[str, Any]:
    """An example's columns as reward functions see them: ``prompt`` (the original, chat messages for a
    conversational dataset) and every other column, without proxrl's private keys."""
    out = {k: v for k, v in example.items() if not k.startswith("_")}
    if "_messages" in example:
        out["prompt"] = example["_messages"]
    return out


def call_batched(
    func: Callable[..., Any],
    columns: list[dict[str, Any]],
    completions: list[str],
    ids: list[list[int]] | None,
    conversational: bool,
) -> list[Any]:
    """Call a TRL-signature reward function once on completions and their rows' ``columns`` (:func:`columns_of`):
    ``prompts``, ``completions`` (as assistant messages when the prompts are conversations, as TRL does),
    ``completion_ids`` and every other column as a list."""
    kwargs = {key: [c[key] for c in columns] for key in columns[0] if key not in ("prompt", "completion")}
    texts: list[Any] = [[{"role": "assistant", "content": t}] for t in completions] if conversational else completions
    out = func(prompts=[c["prompt"] for c in columns], completions=texts, completion_ids=ids, **kwargs)
    if inspect.isawaitable(out):  # TRL's async reward functions (awaited here one after another)
        out = asyncio.run(_awaited(out))
    return list(out)


async def _awaited(pending: Awaitable[Any]) -> Any:
    return await pending


def _reward_of(spec: str, dtype: torch.dtype, device: torch.device) -> tuple[str, Callable[..., Any] | RewardModel]:
    """(name, reward) of one ``reward_funcs`` entry: a local reward-model folder (named by the folder), else a
    ``module:function`` (named by the function)."""
    if ":" not in spec and Path(spec).is_dir():
        return Path(spec).name, _load_reward_model(spec, dtype, device)
    if ":" not in spec:
        raise ConfigError(
            f"reward function {spec!r} is neither 'package.module:function' nor a local reward-model folder (models "
            "are not downloaded)"
        )
    return spec.rpartition(":")[2], load_callable(spec, "reward function")


def _load_reward_model(path: str, dtype: torch.dtype, device: torch.device) -> RewardModel:
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
    return RewardModel(model.eval().requires_grad_(False), tokenizer, device)


def soft_overlong_penalty(lengths: Tensor, max_len: int, cache: int) -> Tensor:
    """DAPO's soft overlong punishment (Yu et al. 2025, Eq. 13) of completions of ``lengths`` tokens (``[B]``,
    the end token included) sampled with at most L_max = ``max_len`` new tokens, L_cache = ``cache``:
    0 up to L_max − L_cache tokens, then falling linearly, ((L_max − L_cache) − |o|) / L_cache, to −1 at L_max."""
    free = max_len - cache
    return ((free - lengths.float()) / cache).clamp(min=-1.0, max=0.0)
