"""Causal language models for GRPO. :mod:`.models`: loading a local folder, tiny models from a config, LoRA
adapters; :mod:`.generation`: sampling G completions per prompt, the completion mask, per-token log-probs, the
texts rewards see; :mod:`.warmup`: a supervised warm-up; :mod:`.scoring`: mean scores and exact-match accuracy.
Beside them: :mod:`.config` (the LM run settings GRPO's config extends), :mod:`.starting` (the starting policy:
a folder, or the task's warmed-up tiny model), :mod:`.decoder` (the lean sampling/scoring pass), :mod:`.rewards`,
:mod:`.reference` (π_ref and its save/restore), :mod:`.critic` (the token critic of ``advantage: gae``),
:mod:`.evaluation` (held-out accuracy), :mod:`.step_stats` (a step's logged row), :mod:`.trainer` (what a trainer of
language models shares: evaluation, summary, its folder checkpoint and load), :mod:`.migrations` (GRPO's checkpoint
migrations). This package re-exports the names of the first four (``from proxrl.lm import generate``).

Everything runs offline: models and tokenizers come from local folders (``from_pretrained(path)``) or are built
from a config; nothing is fetched from a hub. ``transformers`` is the ``lm`` extra (``pip install proxrl[lm]``).
"""

from .decoder import lean_decoder
from .generation import Generations, completion_mask, completion_texts, end_token_ids, generate, token_logps
from .models import (
    load_adapter,
    load_causal_lm,
    load_model,
    load_tokenizer,
    require_transformers,
    tiny_causal_lm,
    with_lora,
)
from .scoring import accuracy, mean_scores
from .warmup import supervised_warmup

__all__ = [
    "Generations",
    "accuracy",
    "completion_mask",
    "completion_texts",
    "end_token_ids",
    "generate",
    "lean_decoder",
    "load_adapter",
    "load_causal_lm",
    "load_model",
    "load_tokenizer",
    "mean_scores",
    "require_transformers",
    "supervised_warmup",
    "tiny_causal_lm",
    "token_logps",
    "with_lora",
]
