"""The GSM8K-format task's former home, kept so that ``module:function`` strings naming it still resolve (a reward
given as ``proxrl.envs.math_tasks:correctness_reward``, in a YAML config or a saved run's config). The code lives
in ``proxrl.lm.math_tasks``; import from there."""

from __future__ import annotations

from ..lm.math_tasks import (
    CHAT_TEMPLATE,
    correctness_reward,
    format_compliance,
    gsm8k_style,
    lenient_accuracy,
    lenient_answer,
    math_tokenizer,
    strict_accuracy,
    strict_answer,
)

__all__ = [
    "CHAT_TEMPLATE",
    "correctness_reward",
    "format_compliance",
    "gsm8k_style",
    "lenient_accuracy",
    "lenient_answer",
    "math_tokenizer",
    "strict_accuracy",
    "strict_answer",
]
