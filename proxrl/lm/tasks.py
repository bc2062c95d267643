"""GRPO's tasks by name: the built-in text tasks (``lm.text_tasks``: addition, reverse, sort; ``lm.math_tasks``:
gsm8k_style), or a user's ``module:function`` returning a :class:`~.text_tasks.TextTask`; and the import of such a
``module:function`` string, a task's or a reward function's.

The registry sits above both task modules (it imports them, neither imports it), so ``math_tasks`` builds on
``text_tasks`` one way only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..config import registered_object
from ..errors import ConfigError
from .math_tasks import gsm8k_style
from .text_tasks import TextTask, addition, reverse, sort

TASKS: dict[str, Callable[..., TextTask]] = {
    "addition": addition,
    "reverse": reverse,
    "sort": sort,
    "gsm8k_style": gsm8k_style,
}


def load_task(name: str, kwargs: dict[str, Any] | None = None) -> TextTask:
    """A built-in task by name, or ``module:function`` returning a :class:`TextTask`; ConfigError otherwise."""
    kwargs = kwargs or {}
    if name in TASKS:
        factory = TASKS[name]
    elif ":" in name:
        factory = load_callable(name, "task")
    else:
        raise ConfigError(
            f"env={name!r} is not a text task; allowed: {', '.join(TASKS)}, or 'module:function' "
            "returning a proxrl.lm.text_tasks.TextTask"
        )
    try:
        task = factory(**kwargs)
    except TypeError as e:
        raise ConfigError(f"env_kwargs {kwargs} do not fit task {name!r}: {e}") from None
    if not isinstance(task, TextTask):
        raise ConfigError(f"env={name!r} returned {type(task).__name__}, not a TextTask")
    return task


def load_callable(spec: str, what: str) -> Callable[..., Any]:
    """Import ``module:attribute`` (or find a function this process passed as an object,
    :func:`config.registered_object`); ConfigError naming ``what`` if it does not resolve to a callable."""
    found: Callable[..., Any] | None = registered_object(spec)
    if found is not None:
        return found
    module_name, _, attr = spec.partition(":")
    try:
        obj: object = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{what} {spec!r} cannot be imported ({e}); write it as 'package.module:function'") from None
    if not callable(obj):
        raise ConfigError(f"{what} {spec!r} is not callable")
    return obj
