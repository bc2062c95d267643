"""TRL's names for GRPO's settings: the one table of the names a TRL user sets in ``GRPOConfig`` (its own and the
``TrainingArguments`` ones it inherits) that proxrl takes as other names of its keys, in the trainer's keywords, a
YAML file and ``--set`` alike (``GRPOConfig.translate``), and the TRL names it refuses because they mean nothing
here. docs/grpo.md's "Coming from TRL" shows the table (a test keeps the two equal)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import RUN_DIR
from ..errors import ConfigError


@dataclass(frozen=True)
class TRLName:
    """TRL's ``name`` for proxrl's ``key`` (``RUN_DIR``: the run directory), and how the two relate."""

    name: str
    key: str
    note: str = "the same setting"


TRL_NAMES: tuple[TRLName, ...] = (
    TRLName("output_dir", RUN_DIR, "the run directory (`run_dir=`, `--run-dir`)"),
    TRLName("max_steps", "total_steps", "GRPO steps; TRL counts optimiser steps, μ per generation batch"),
    TRLName(
        "per_device_train_batch_size",
        "prompts_per_step",
        "B completions per micro-batch: P = B × `grad_accum_steps` / G (the batch of one process)",
    ),
    TRLName("learning_rate", "lr"),
    TRLName("gradient_accumulation_steps", "grad_accum_steps", "micro-batches per optimiser step"),
    TRLName("logging_steps", "log_every", "a row in progress.csv and TensorBoard every n steps (TRL: their mean)"),
    TRLName("save_steps", "checkpoint_every", "a checkpoint every n steps"),
    TRLName("num_generations", "group_size", "G"),
    TRLName("max_completion_length", "max_new_tokens"),
    TRLName("epsilon", "clip_eps", "ε_low"),
    TRLName("epsilon_high", "clip_eps_high", "ε_high (CISPO's ε_max)"),
    TRLName("adam_epsilon", "adam_eps", "AdamW's ε"),
)
ALIASES: dict[str, str] = {n.name: n.key for n in TRL_NAMES}
DERIVED = ("per_device_train_batch_size",)  # resolved from the whole config (finish), not renamed per layer

# TRL 1.16's GRPOConfig settings, and the TrainingArguments ones TRL users set most, that mean nothing in proxrl:
# refused in one line with the reason (a name not here and no key is refused as any unknown key)
NOT_HERE: dict[str, str] = {
    "num_train_epochs": "proxrl counts GRPO steps: set max_steps (total_steps)",
    "bf16": "TRL's bf16 is mixed precision; proxrl's dtype=bfloat16 stores the weights in bfloat16",
    "fp16": "proxrl computes in float32 or bfloat16 (dtype)",
    "lr_scheduler_type": "proxrl's learning rate is constant after lr_warmup_steps",
    "warmup_ratio": "set lr_warmup_steps (TRL's warmup_steps; proxrl's warmup_steps is the tiny model's warm-up)",
    "report_to": "proxrl writes progress.csv and TensorBoard (tensorboard)",
    "use_vllm": "no vLLM backend here: proxrl samples with its own decoder or transformers' generate",
    "ref_model_sync_steps": "ref_sync_every copies π_θ into π_ref (TRL mixes the two by ref_model_mixup_alpha)",
    "sync_ref_model": "ref_sync_every copies π_θ into π_ref (TRL mixes the two by ref_model_mixup_alpha)",
    "vllm_importance_sampling_correction": "vLLM only; proxrl's own is sampling_correction",
    "vllm_importance_sampling_mode": "vLLM only; proxrl's own is sampling_correction",
    "vllm_importance_sampling_clip_max": "vLLM only; proxrl's own is sampling_correction_max",
    "vllm_importance_sampling_clip_min": "vLLM only; proxrl's own is sampling_correction_min",
    "gradient_checkpointing": "not implemented in proxrl",
    "per_device_eval_batch_size": "proxrl evaluates eval_examples held-out prompts every eval_every steps",
    "eval_strategy": "proxrl evaluates every eval_every steps",
    "eval_steps": "proxrl evaluates every eval_every steps",
    "save_strategy": "proxrl saves every save_steps (checkpoint_every) steps",
    "save_total_limit": "proxrl keeps keep_checkpoints checkpoints",
    **dict.fromkeys(
        (
            "model_init_kwargs trust_remote_code router_aux_loss_coef disable_dropout cast_lm_head_to_fp32 "
            "remove_unused_columns num_generations_eval ds3_gather_for_generation shuffle_dataset pad_to_multiple_of "
            "generation_batch_size steps_per_generation top_k min_p generation_kwargs chat_template_kwargs "
            "repetition_penalty cache_implementation vllm_mode vllm_model_impl vllm_enable_sleep_mode "
            "vllm_structured_outputs_regex vllm_server_base_url vllm_server_host vllm_server_port "
            "vllm_server_timeout vllm_group_port vllm_gpu_memory_utilization vllm_max_model_length "
            "vllm_tensor_parallel_size delta multi_objective_aggregation ref_model_mixup_alpha top_entropy_quantile "
            "entropy_coef use_adaptive_entropy entropy_coef_min entropy_coef_max entropy_coef_delta entropy_target "
            "max_tool_calling_iterations off_policy_mask_threshold log_completions log_multimodal "
            "num_completions_to_print log_unique_prompts log_completions_hub_repo "
            "use_transformers_continuous_batching transformers_continuous_batching_config use_transformers_paged "
            "vllm_importance_sampling_cap max_prompt_length push_to_hub hub_model_id run_name logging_dir "
            "logging_strategy optim adam_beta1 adam_beta2 dataloader_num_workers log_level disable_tqdm use_cpu"
        ).split(),
        "not implemented in proxrl",
    ),
}


def translate(values: Mapping[str, Any], keys: set[str]) -> dict[str, Any]:
    """One layer of GRPO settings with TRL's names (:data:`TRL_NAMES`) replaced by proxrl's ``keys`` and
    ``scale_rewards`` given as TRL's bool (True: ``group``, False: ``none``) as its string; a TRL name with no
    meaning here (:data:`NOT_HERE`) or both names of one key given two values are refused in one line. The run
    directory's name and :data:`DERIVED` ones stay as they are (for the caller and :func:`finish`)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in NOT_HERE and name not in keys:
            raise ConfigError(f"'{name}' is a TRL setting with no meaning in proxrl: {NOT_HERE[name]}")
        key = ALIASES.get(name, name)
        if key == RUN_DIR or name in DERIVED:
            key = name
        if key == "scale_rewards" and isinstance(value, bool):
            value = "group" if value else "none"  # as TRL's GRPOConfig reads a bool
        if key in out and out[key] != value:
            other = next(n for n in values if n != name and ALIASES.get(n, n) == key)
            raise ConfigError(f"'{name}' and '{other}' both set {key}, to {value!r} and {out[key]!r}: give one")
        out[key] = value
    return out


def finish(values: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The whole config's settings with ``per_device_train_batch_size`` B turned into P = B × grad_accum_steps / G
    (TRL's one-process batch: B completions in each of the grad_accum_steps micro-batches of a step), the other
    keys from ``values`` or else their ``defaults``; refused in one line where G does not divide it."""
    if "per_device_train_batch_size" not in values:
        return values
    out = dict(values)
    batch = out.pop("per_device_train_batch_size")
    accum = out.get("grad_accum_steps", defaults["grad_accum_steps"])
    group = out.get("group_size", defaults["group_size"])
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (batch, accum, group)):
        raise ConfigError(
            f"per_device_train_batch_size={batch!r}, gradient_accumulation_steps={accum!r} and num_generations="
            f"{group!r} must be positive integers"
        )
    if (batch * accum) % group:
        raise ConfigError(
            f"per_device_train_batch_size × gradient_accumulation_steps = {batch} × {accum} completions must be a "
            f"multiple of num_generations (group_size) = {group}: each prompt's G completions stay together"
        )
    if "prompts_per_step" in out and out["prompts_per_step"] != batch * accum // group:
        raise ConfigError(
            f"per_device_train_batch_size={batch} makes prompts_per_step {batch * accum // group}, and "
            f"prompts_per_step={out['prompts_per_step']} is given too: give one"
        )
    out["prompts_per_step"] = batch * accum // group
    return out
