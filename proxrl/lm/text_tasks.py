"""Small verifiable text tasks for GRPO on a CPU: two-number addition, reversing and sorting a short string.

Each task generates ``{"prompt": ..., "answer": ...}`` examples from a seeded ``random.Random``, keeps a fixed
held-out set of prompts that training never samples, and ships its reward functions with the signature GRPO
expects, ``f(prompt, completion, **example) -> float``. ``char_tokenizer`` builds the matching one-token-per-
character tokenizer with the ``tokenizers`` library (no download); ``sampler_state`` and ``set_sampler_state`` keep
the example sampler's RNG in a checkpoint. ``lm.tasks`` finds a task by name (these, and ``lm.math_tasks``'s).
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

RewardFunction = Callable[..., float]
SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")


def exact_match(prompt: str, completion: str, answer: str, **_: Any) -> float:
    """1 if the completion (stripped) equals the answer, else 0."""
    return float(completion.strip() == answer)


def char_match(prompt: str, completion: str, answer: str, **_: Any) -> float:
    """Partial credit: the share of the answer's characters the completion gets right, position by position,
    minus the share of extra characters (in [−1, 1]); a denser signal than exact match."""
    completion = completion.strip()
    right = sum(a == b for a, b in zip(completion, answer, strict=False))
    extra = max(0, len(completion) - len(answer))
    return (right - extra) / max(1, len(answer))


class PromptTask(Protocol):
    """What a trainer reads of its task: a :class:`TextTask`, or a dataset's (``lm.datasets.DatasetTask``)."""

    @property
    def name(self) -> str:
        """The task's name in messages."""
        ...

    @property
    def rewards(self) -> Mapping[str, RewardFunction]:
        """The task's own reward functions by name (a dataset brings none)."""
        ...

    @property
    def accuracy(self) -> RewardFunction:
        """The held-out score of a greedy completion."""
        ...

    @property
    def metrics(self) -> Mapping[str, RewardFunction]:
        """More held-out scores, logged beside ``accuracy``."""
        ...

    def sample(self, rng: random.Random, n: int) -> list[dict[str, Any]]:
        """``n`` training examples drawn from ``rng``."""
        ...

    def held_out(self) -> Sequence[dict[str, Any]]:
        """The evaluation examples."""
        ...


@dataclass
class TextTask:
    """A prompt generator with a held-out split and its reward functions.

    ``make(rng)`` returns one example dict with at least ``prompt`` and ``answer``; ``alphabet`` holds every
    character prompts and answers use; examples whose prompt is in the held-out set are never trained on.
    """

    name: str
    make: Callable[[random.Random], dict[str, str]]
    alphabet: str
    rewards: dict[str, RewardFunction] = field(default_factory=lambda: {"exact_match": exact_match})
    num_held_out: int = 200
    seed: int = 12345
    accuracy: RewardFunction = exact_match  # the held-out score of a greedy completion
    metrics: dict[str, RewardFunction] = field(default_factory=dict)  # more held-out scores, logged beside it
    tokenizer: Callable[[], Any] | None = None  # the tiny model's tokenizer (None: one token per alphabet character)
    max_length: int = 64  # the tiny model's context, in tokens (prompt + completion)
    _held_out: list[dict[str, str]] = field(default_factory=list, init=False, repr=False)
    _held_out_prompts: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        seen: set[str] = set()
        for _ in range(self.num_held_out * 50):
            if len(self._held_out) >= self.num_held_out:
                break
            ex = self.make(rng)
            if ex["prompt"] not in seen:
                seen.add(ex["prompt"])
                self._held_out.append(ex)
        self._held_out_prompts = seen

    def held_out(self) -> list[dict[str, str]]:
        """The fixed evaluation examples (the same for every seed)."""
        return list(self._held_out)

    def sample(self, rng: random.Random, n: int) -> list[dict[str, str]]:
        """``n`` training examples whose prompts are not held out."""
        out: list[dict[str, str]] = []
        while len(out) < n:
            ex = self.make(rng)
            if ex["prompt"] not in self._held_out_prompts:
                out.append(ex)
        return out


def addition(digits: int = 2, num_held_out: int = 200) -> TextTask:
    """ "a+b=" → "a+b" for a, b < 10^digits."""
    top = 10**digits

    def make(rng: random.Random) -> dict[str, str]:
        a, b = rng.randrange(top), rng.randrange(top)
        return {"prompt": f"{a}+{b}=", "answer": str(a + b)}

    return TextTask(
        "addition", make, string.digits + "+=", {"exact_match": exact_match, "char_match": char_match}, num_held_out
    )


def reverse(min_len: int = 3, max_len: int = 6, num_held_out: int = 200) -> TextTask:
    """ "abc>" → "cba" over lowercase letters a–j."""
    letters = "abcdefghij"

    def make(rng: random.Random) -> dict[str, str]:
        s = "".join(rng.choice(letters) for _ in range(rng.randint(min_len, max_len)))
        return {"prompt": f"{s}>", "answer": s[::-1]}

    return TextTask(
        "reverse", make, letters + ">", {"exact_match": exact_match, "char_match": char_match}, num_held_out
    )


def sort(min_len: int = 3, max_len: int = 6, num_held_out: int = 200) -> TextTask:
    """ "3142:" → "1234" (the prompt's digits in ascending order)."""

    def make(rng: random.Random) -> dict[str, str]:
        s = "".join(rng.choice(string.digits) for _ in range(rng.randint(min_len, max_len)))
        return {"prompt": f"{s}:", "answer": "".join(sorted(s))}

    return TextTask(
        "sort", make, string.digits + ":", {"exact_match": exact_match, "char_match": char_match}, num_held_out
    )


def char_tokenizer(alphabet: str) -> Any:
    """A ``PreTrainedTokenizerFast`` with one token per character of ``alphabet`` plus <pad>, <eos>, <unk>,
    padding on the left (for batched generation); built locally with the ``tokenizers`` library."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(alphabet))
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *chars])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # transformers' TokenizersBackend: no annotations
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", padding_side="left"
    )


def sampler_state(rng: random.Random) -> str:
    """The state of a task's example sampler ``rng`` as JSON text (a checkpoint-safe value)."""
    return json.dumps(rng.getstate())


def set_sampler_state(rng: random.Random, state: str) -> None:
    """Restore :func:`sampler_state`'s ``state`` into ``rng``."""
    version, internal, gauss = json.loads(state)
    rng.setstate((version, tuple(internal), gauss))
