"""The text tasks' former home, kept so that ``module:function`` strings naming it still resolve: a reward or task
given as ``proxrl.envs.text_tasks:exact_match`` (in a YAML config, on the command line, or in the config a run
saved when a function was passed as an object) and user tasks importing ``TextTask`` from here. The code lives in
``proxrl.lm.text_tasks`` (the registry in ``proxrl.lm.tasks``); import from there."""

from __future__ import annotations

from ..lm.math_tasks import gsm8k_style
from ..lm.tasks import TASKS, load_task
from ..lm.text_tasks import (
    RewardFunction,
    TextTask,
    addition,
    char_match,
    char_tokenizer,
    exact_match,
    reverse,
    sort,
)

__all__ = [
    "TASKS",
    "RewardFunction",
    "TextTask",
    "addition",
    "char_match",
    "char_tokenizer",
    "exact_match",
    "gsm8k_style",
    "load_task",
    "reverse",
    "sort",
]
