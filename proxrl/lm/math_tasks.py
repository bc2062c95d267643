"""A GSM8K-format task that trains on a CPU with no download: two-step arithmetic word problems from templates,
whose reference solutions end with the answer after ``####`` as GSM8K's do.

- :func:`strict_answer` reads the number after ``#### `` (lm-evaluation-harness's ``strict-match``);
  :func:`lenient_answer` the last number anywhere (its ``flexible-extract``). Held-out ``accuracy`` is strict;
  :func:`lenient_accuracy` and :func:`format_compliance` are logged beside it.
- :func:`math_tokenizer` is a byte-pair-encoding tokenizer trained by the ``tokenizers`` library on the task's own
  text (deterministic), with ChatML-style turns (``<|im_start|>`` / ``<|im_end|>``, the end token) and a chat
  template, as a Hugging Face ``PreTrainedTokenizerFast``; prompts are the question as a user turn through that
  template. The tiny model for it is Qwen2-architecture (``tiny_arch: qwen2``).
"""

from __future__ import annotations

import functools
import random
import re
from typing import Any

from .text_tasks import TextTask

NAMES = ("Ann", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana")
ITEMS = ("apples", "books", "coins", "pens", "shells", "stamps", "cards", "eggs")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ("<pad>", "<unk>", "<|im_start|>", "<|im_end|>")
_STRICT = re.compile(r"#### (-?[0-9][0-9,]*)")
_NUMBER = re.compile(r"-?[0-9][0-9,]*")


def _problem(rng: random.Random) -> tuple[str, str, int]:
    """(question, worked solution, answer) of one of five two-step templates; numbers from 2 to 12."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, c = rng.randint(2, 12), rng.randint(2, 12), rng.randint(2, 12)
    kind = rng.randrange(5)
    if kind == 0:
        c = min(c, a + b)
        q = f"{name} has {a} {item}. {name} gets {b} more and gives away {c}. How many {item} are left?"
        s, ans = f"{a}+{b}={a + b}. {a + b}-{c}={a + b - c}.", a + b - c
    elif kind == 1:
        q = f"{name} has {a} bags with {b} {item} in each and finds {c} more. How many {item} in all?"
        s, ans = f"{a}*{b}={a * b}. {a * b}+{c}={a * b + c}.", a * b + c
    elif kind == 2:
        c = min(c, a * b)
        q = f"{name} buys {a} boxes of {b} {item} and uses {c}. How many {item} are left?"
        s, ans = f"{a}*{b}={a * b}. {a * b}-{c}={a * b - c}.", a * b - c
    elif kind == 3:
        q = f"{name} has {a} {item}, gets {b} more, then gets {c} more. How many {item} now?"
        s, ans = f"{a}+{b}={a + b}. {a + b}+{c}={a + b + c}.", a + b + c
    else:
        b = min(b, a)
        q = f"{name} had {a} {item}, lost {b} and found {c}. How many {item} now?"
        s, ans = f"{a}-{b}={a - b}. {a - b}+{c}={a - b + c}.", a - b + c
    return q, f"{s}\n#### {ans}", ans


def strict_answer(text: str) -> str | None:
    """The number after ``#### `` (commas dropped), or None: GSM8K's answer format, strictly."""
    m = _STRICT.search(text)
    return m.group(1).replace(",", "") if m else None


def lenient_answer(text: str) -> str | None:
    """The last number anywhere in the text (commas dropped), or None."""
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def strict_accuracy(prompt: str, completion: str, answer: str, **_: Any) -> float:
    """1 if the number after ``####`` is the answer."""
    return float(strict_answer(completion) == answer)


def lenient_accuracy(prompt: str, completion: str, answer: str, **_: Any) -> float:
    """1 if the last number in the completion is the answer."""
    return float(lenient_answer(completion) == answer)


def format_compliance(prompt: str, completion: str, **_: Any) -> float:
    """1 if the completion states its answer as ``#### <number>``."""
    return float(strict_answer(completion) is not None)


def correctness_reward(prompt: str, completion: str, answer: str, **_: Any) -> float:
    """GRPO's reward: 1 for the right answer after ``####``, 0.1 for the format with a wrong answer, else 0."""
    return 1.0 if strict_answer(completion) == answer else 0.1 * format_compliance(prompt, completion)


@functools.lru_cache(maxsize=1)
def math_tokenizer() -> Any:
    """The task's BPE tokenizer (vocabulary 400), trained on 3,000 generated problems and solutions with a fixed
    seed, with the ChatML turn tokens, ``<|im_end|>`` as end token, left padding and :data:`CHAT_TEMPLATE`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(0)
    corpus = []
    for _ in range(3000):
        q, s, _ans = _problem(rng)
        corpus += [q, s]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=list(SPECIAL), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # transformers' TokenizersBackend: no annotations
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def gsm8k_style(num_held_out: int = 200) -> TextTask:
    """Two-step arithmetic word problems in GSM8K's format: the prompt is the question as a chat user turn, the
    ``answer`` the number, the ``target`` (what the tiny model's warm-up imitates) the worked solution ending
    ``#### <answer>``."""
    tokenizer = math_tokenizer()

    def make(rng: random.Random) -> dict[str, str]:
        q, solution, ans = _problem(rng)
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        return {"prompt": prompt, "answer": str(ans), "target": solution}

    return TextTask(
        "gsm8k_style",
        make,
        alphabet="",
        rewards={"correctness": correctness_reward},
        num_held_out=num_held_out,
        accuracy=strict_accuracy,
        metrics={"lenient_accuracy": lenient_accuracy, "format_compliance": format_compliance},
        tokenizer=math_tokenizer,
        max_length=128,
    )
