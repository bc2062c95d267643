"""TRL's call shapes on proxrl (issue 35): ``from proxrl.trl import GRPOConfig, GRPOTrainer`` in place of ``from trl
import GRPOConfig, GRPOTrainer`` runs TRL's GRPO scripts as written, ``args=GRPOConfig(output_dir=..., ...)``
included. Both are thin: the settings are proxrl's own config keys or TRL's names of them (one table,
``proxrl.lm.trl_names``, which :class:`proxrl.GRPO` reads too) and the trainer is :class:`proxrl.GRPO`."""

from __future__ import annotations

from typing import Any

from .algos.grpo import GRPO
from .algos.grpo_config import GRPOConfig as _ProxrlGRPOConfig
from .config import ConfigError, merge_layer, resolve

# GRPOTrainer's arguments with no counterpart in proxrl, and what to do instead (refused when given, not ignored)
NO_COUNTERPART = {
    "processing_class": "the tokenizer is read from the model folder (model=)",
    "reward_processing_classes": "a reward-model folder brings its own tokenizer",
    "callbacks": "pass callback=fn(trainer, row) to learn(); it may return False to stop",
    "optimizers": "proxrl builds its AdamW from learning_rate (lr) and adam_epsilon (adam_eps)",
}


class GRPOConfig:
    """TRL's ``GRPOConfig(...)``: settings in TRL's names or proxrl's keys, checked when made (a wrong or
    meaningless name is refused in one line, as TRL's dataclass refuses an unknown field); ``output_dir`` is the
    run directory. Give it to :func:`GRPOTrainer` as ``args=``; ``settings`` holds what was given."""

    def __init__(self, **settings: Any) -> None:
        self.settings = dict(settings)
        resolve(_ProxrlGRPOConfig, overrides={k: v for k, v in settings.items() if k != "output_dir"})

    def __repr__(self) -> str:
        return f"GRPOConfig({', '.join(f'{k}={v!r}' for k, v in self.settings.items())})"


def _lora_settings(peft_config: Any) -> dict[str, Any]:
    """A peft ``LoraConfig`` as proxrl's keys: LoRA of rank ``r`` and scale ``lora_alpha`` on every linear layer
    (proxrl's choice of modules; TRL's example configs name the same ``all-linear``)."""
    if type(peft_config).__name__ != "LoraConfig":
        raise ConfigError(f"peft_config: proxrl trains LoRA adapters only (got {type(peft_config).__name__})")
    return {"lora": True, "lora_r": int(peft_config.r), "lora_alpha": int(peft_config.lora_alpha)}


def GRPOTrainer(  # noqa: N802 - TRL's class name, kept so that TRL's scripts run with only the import changed
    model: str | None = None,
    reward_funcs: Any = None,
    args: GRPOConfig | None = None,
    train_dataset: Any = None,
    eval_dataset: Any = None,
    peft_config: Any = None,
    **kwargs: Any,
) -> GRPO:
    """TRL's ``GRPOTrainer(model, reward_funcs, args, train_dataset, eval_dataset, peft_config)`` as a
    :class:`proxrl.GRPO`: ``model`` a local model folder, ``reward_funcs`` one reward function or a list (functions,
    ``module:function`` paths, reward-model folders), ``args`` a :class:`GRPOConfig`, ``peft_config`` a peft
    ``LoraConfig``; further keywords are config keys (or TRL's names), laid over ``args``."""
    for name, instead in NO_COUNTERPART.items():
        if kwargs.pop(name, None) is not None:
            raise ConfigError(f"GRPOTrainer({name}=...) has no counterpart in proxrl: {instead}")
    if args is not None and not isinstance(args, GRPOConfig):
        raise ConfigError(
            f"args must be proxrl.trl.GRPOConfig (got {type(args).__name__}): import GRPOConfig from proxrl.trl"
        )
    given = dict(args.settings) if args is not None else {}
    output_dir = kwargs.pop("output_dir", given.pop("output_dir", None))
    layers = [_ProxrlGRPOConfig.translate(layer) for layer in (given, kwargs)]
    settings = merge_layer(_ProxrlGRPOConfig, layers[0], layers[1])  # a keyword replaces args' setting of its key
    if output_dir is not None:
        settings["output_dir"] = output_dir
    if peft_config is not None:
        settings.update(_lora_settings(peft_config))
    if model is not None:
        settings["model"] = model
    if reward_funcs is not None:
        settings["reward_funcs"] = reward_funcs
    return GRPO(train_dataset=train_dataset, eval_dataset=eval_dataset, **settings)
