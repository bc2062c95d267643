"""Prompts from a dataset, TRL's way: a ``datasets.Dataset`` (or a local file or ``save_to_disk`` folder) with a
``prompt`` column that holds text or a conversation (a list of ``{"role", "content"}`` messages, rendered with the
tokenizer's chat template); every other column reaches the reward functions as keyword arguments.

:class:`DatasetTask` gives the trainer the same three things a built-in text task does: ``sample(rng, n)`` training
examples, ``held_out()`` evaluation examples and ``accuracy``, the per-completion score whose mean over greedy
completions of the held-out examples is the logged ``accuracy``.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from ..errors import ConfigError
from .text_tasks import exact_match
from .rewards import call_batched, columns_of, takes_batches

SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def require_datasets() -> Any:
    """The ``datasets`` module, or a ConfigError naming the extra that installs it."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("datasets need the datasets library: pip install 'proxrl[lm]'") from None
    return datasets


def load_dataset(path: str, split: str = "train") -> Any:
    """A local dataset: a ``.jsonl``/``.json``/``.parquet``/``.csv`` file, or a folder written by
    ``save_to_disk`` (a ``DatasetDict``'s ``split``). Nothing is downloaded."""
    datasets = require_datasets()
    p = Path(path)
    if p.is_dir():
        try:
            loaded = datasets.load_from_disk(str(p))
        except FileNotFoundError as e:
            raise ConfigError(f"dataset {path!r} is not a save_to_disk folder: {e}") from None
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ConfigError(f"dataset {path!r} has splits {', '.join(loaded)}, not {split!r}")
            return loaded[split]
        if split != "train":
            raise ConfigError(f"dataset {path!r} is one dataset, with no {split!r} split")
        return loaded
    if not p.is_file():
        raise ConfigError(f"dataset {path!r} does not exist (a .jsonl, .json, .parquet or .csv file, or a folder)")
    builder = SUFFIXES.get(p.suffix.lower())
    if builder is None:
        raise ConfigError(f"dataset {path!r}: read .jsonl, .json, .parquet and .csv files, not {p.suffix!r}")
    return datasets.load_dataset(builder, data_files=str(p), split="train")


def per_completion(func: Callable[..., Any]) -> Callable[..., float]:
    """``func`` as a per-completion score ``f(prompt, completion, **example)``: TRL-signature functions are
    called on a batch of one (a None score counts as 0)."""
    if not takes_batches(func):
        return func

    @functools.wraps(func)  # keeps its name for messages
    def score(completion: str, **example: Any) -> float:
        conversational = "_messages" in example  # chat rows: messages in, assistant messages out, as in training
        value = call_batched(func, [columns_of(example)], [completion], None, conversational)[0]
        return 0.0 if value is None else float(value)

    return score


@dataclass
class DatasetTask:
    """Training and held-out examples from datasets (rows as dicts: ``prompt`` rendered to text; a conversation's
    messages kept under ``_messages`` for reward functions), sampled without replacement within a batch."""

    name: str
    train: Sequence[dict[str, Any]]
    evaluation: Sequence[dict[str, Any]]
    accuracy: Callable[..., float] = exact_match
    metrics: dict[str, Callable[..., float]] = field(default_factory=dict)  # no held-out scores beside accuracy
    rewards: dict[str, Callable[..., float]] = field(default_factory=dict)  # a dataset brings none: reward_funcs do
    alphabet: str = ""  # no character tokenizer: a dataset needs a model with its own tokenizer

    def sample(self, rng: random.Random, n: int) -> list[dict[str, Any]]:
        """``n`` training rows, distinct when the dataset has as many (drawn from ``rng``, which the trainer's
        checkpoint keeps)."""
        if n <= len(self.train):
            return [self.train[i] for i in rng.sample(range(len(self.train)), n)]
        return [self.train[rng.randrange(len(self.train))] for _ in range(n)]

    def held_out(self) -> Sequence[dict[str, Any]]:
        """The evaluation rows, in the dataset's order (a slice of them is a list)."""
        return self.evaluation


class RenderedRows(Sequence[dict[str, Any]]):
    """An Arrow-backed ``datasets.Dataset``'s rows, each rendered by :func:`render_prompt` when it is read rather
    than all up front. The dataset stays memory-mapped, so the processes of a data-parallel run share one copy
    through the page cache and each renders only the rows it draws (TRL likewise applies the chat template per
    batch). Its rows share one schema, so rendering the first checks the format of all."""

    def __init__(self, dataset: Any, tokenizer: Any) -> None:
        self.dataset, self.tokenizer = dataset, tokenizer

    def __len__(self) -> int:
        return len(self.dataset)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        """Row ``i`` rendered (a slice: a list of them)."""
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return render_prompt(dict(self.dataset[i]), self.tokenizer)


def rendered(rows: Any, tokenizer: Any) -> Sequence[dict[str, Any]]:
    """``rows`` with their prompts rendered: an Arrow dataset as :class:`RenderedRows` (its first row checked now),
    anything else (a list of dicts, an iterable dataset) rendered row by row now, which checks every row."""
    if hasattr(rows, "column_names") and hasattr(rows, "__getitem__") and hasattr(rows, "__len__"):
        lazy = RenderedRows(rows, tokenizer)
        if len(lazy):
            lazy[0]  # noqa: B018 - a missing column or a prompt of the wrong form is refused before training
        return lazy
    return [render_prompt(dict(r), tokenizer) for r in rows]


def render_prompt(row: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """The row with ``prompt`` as text: a conversation goes through the tokenizer's chat template with the
    assistant's turn opened (its messages kept under ``_messages``), and the template's leading BOS is dropped
    when the tokenizer adds one itself (no double BOS)."""
    if "prompt" not in row:
        raise ConfigError(f"a dataset row has no 'prompt' column (columns: {', '.join(map(str, row))})")
    prompt = row["prompt"]
    if isinstance(prompt, str):
        return dict(row)
    if not (isinstance(prompt, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt)):
        raise ConfigError(
            f"a dataset's prompt must be text or a list of {{'role', 'content'}} messages, got {str(prompt)[:80]!r}"
        )
    if getattr(tokenizer, "chat_template", None) is None:
        raise ConfigError("the dataset's prompts are conversations, and the tokenizer has no chat template")
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos) and tokenizer("").input_ids[:1] == [tokenizer.bos_token_id]:
        text = text[len(bos) :]
    return {**row, "prompt": text, "_messages": prompt}


def dataset_task(
    train: Any,
    evaluation: Any | None,
    tokenizer: Any,
    accuracy: Callable[..., Any] | None = None,
    name: str = "dataset",
) -> DatasetTask:
    """A :class:`DatasetTask` from a training dataset and an optional held-out one (rows of either: dicts with a
    ``prompt`` column). Held-out accuracy is ``accuracy`` (per completion or TRL-signature) when given, else
    exact match with an ``answer`` column; with neither, evaluation is refused where it is asked for."""
    rows = rendered(train, tokenizer)
    if not len(rows):
        raise ConfigError("the training dataset is empty")
    held = rendered(evaluation, tokenizer) if evaluation is not None else []
    if accuracy is None and held and "answer" not in held[0]:
        raise ConfigError(
            "the eval dataset has no 'answer' column for exact match: name an eval_metric ('module:function')"
        )
    return DatasetTask(name, rows, held, per_completion(accuracy) if accuracy is not None else exact_match)
