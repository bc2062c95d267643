"""GRPO's settings (kept apart from the trainer, as TRL keeps its ``GRPOConfig``): the hyperparameters, named as in
the paper and TRL's GRPOConfig where they overlap, their cross-checks, TRL's names of them, and the loss they pick;
then what turns GRPO's keywords into settings (:func:`keyword_overrides`, :func:`reward_specs`) and its dataset
settings into a task (:func:`task_from_datasets`). The text task, model, rewards, sampling and evaluation settings
are ``lm.config.LanguageModelConfig``'s."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..advantages import REWARD_SCALINGS
from ..config import ConfigError, object_path, param
from ..lm.tasks import load_callable
from ..lm import trl_names
from ..lm.config import LanguageModelConfig
from ..lm.datasets import dataset_task, load_dataset
from ..objectives import (
    IMPORTANCE_SAMPLING_LEVELS,
    LOSS_TYPES,
    SAMPLING_CORRECTIONS,
    GRPOLoss,
    make_grpo_loss,
)


@dataclass(frozen=True, kw_only=True)
class GRPOConfig(LanguageModelConfig):
    """GRPO hyperparameters, named as in the paper and TRL's GRPOConfig where they overlap (the text task, model,
    rewards, sampling and evaluation settings are ``lm.config.LanguageModelConfig``'s)."""

    algo = "grpo"
    renamed = {  # keys of earlier proxrl versions: what replaced them
        "aggregation": "loss_type (TRL's names: sequence is grpo, token is dapo, constant is dr_grpo)",
    }
    aliases = trl_names.ALIASES  # TRL's GRPOConfig names (proxrl/lm/trl_names.py: the one table)

    total_steps: int = param(200, "GRPO steps, each one batch of prompts_per_step × group_size completions", low=1)
    checkpoint_every: int = param(50, "write a checkpoint every this many GRPO steps (0: only at the end)", low=0)
    group_size: int = param(8, "G, completions sampled per prompt", low=2)
    prompts_per_step: int = param(16, "P, prompts per GRPO step", low=1)
    lr: float = param(1e-6, "α, AdamW learning rate", low=0.0, low_open=True)
    lr_warmup_steps: int = param(
        0,
        "n: the learning rate rises linearly from α/n to α over the first n GRPO "
        "steps, then stays at α (0: no warm-up)",
        low=0,
    )
    adam_eps: float = param(1e-8, "AdamW's ε", low=0.0, low_open=True)
    weight_decay: float = param(0.0, "AdamW weight decay", low=0.0)
    max_grad_norm: float = param(1.0, "global gradient-norm clip (0: off)", low=0.0)
    clip_eps: float = param(0.2, "ε_low: ratios below 1 − ε_low stop pushing down", low=0.0, low_open=True)
    clip_eps_high: float | None = param(
        None,
        "ε_high: ratios above 1 + ε_high stop pushing up (None: ε_low; larger values are DAPO's clip-higher)",
        low=0.0,
        low_open=True,
    )
    beta: float = param(
        0.04,
        "β, coefficient of the k3 KL to the frozen reference model (0: no reference model is kept at all)",
        low=0.0,
    )
    use_bias_correction_kl: bool = param(
        False,
        "weigh each token's k3 term by the importance ratio ρ (with its gradient), β·k3·ρ, as TRL's "
        "use_bias_correction_kl (DeepSeek-V3.2: the unbiased gradient of the reverse KL off-policy; TRL's default "
        "True); False: β·k3",
    )
    ref_sync_every: int = param(0, "copy the policy into the reference model every this many steps (0: never)", low=0)
    scale_rewards: str = param(
        "group", "advantage scale: group std (paper), batch std, or none (Dr. GRPO)", choices=REWARD_SCALINGS
    )
    loss_type: str = param(
        "grpo",
        "how the loss is taken over tokens, as TRL's loss_type: grpo (mean per completion, then over completions; "
        "paper), bnpo (mean over each micro-batch's tokens), dr_grpo (sum / (B · max_new_tokens); Dr. GRPO), "
        "dapo (mean over the whole batch's tokens; DAPO), cispo (MiniMax-M1: the clipped importance weight, held "
        "constant, times Â ln π; reduced as dapo; its cap ε_max is clip_eps_high), sapo (a sigmoid gate instead "
        "of the clip; reduced as grpo), luspo (each completion's tokens summed, then the mean over completions; "
        "LUSPO, with importance_sampling_level=sequence), vespo (a Gamma weight of each completion's ratio, held "
        "constant, times Â ln π; reduced as dapo; VESPO)",
        choices=LOSS_TYPES,
    )
    sapo_temperature_pos: float = param(1.0, "τ of loss_type sapo where Â > 0", low=0.0, low_open=True)
    sapo_temperature_neg: float = param(1.05, "τ of loss_type sapo where Â ≤ 0", low=0.0, low_open=True)
    vespo_k_pos: float = param(2.0, "k (power) of loss_type vespo's Gamma weight where Â ≥ 0", low=0.0)
    vespo_lambda_pos: float = param(3.0, "λ (decay) of loss_type vespo's Gamma weight where Â ≥ 0", low=0.0)
    vespo_k_neg: float = param(3.0, "k (power) of loss_type vespo's Gamma weight where Â < 0", low=0.0)
    vespo_lambda_neg: float = param(2.0, "λ (decay) of loss_type vespo's Gamma weight where Â < 0", low=0.0)
    importance_sampling_level: str = param(
        "token",
        "the ratio the clip acts on: token (ρ per token; GRPO, DAPO) or sequence (GSPO's length-normalised "
        "sequence ratio, one per completion)",
        choices=IMPORTANCE_SAMPLING_LEVELS,
    )
    sampling_correction: str = param(
        "none",
        "correct for a sampler whose log-probs differ from the trainer's (TRL's vllm_importance_sampling_mode): "
        "token_truncate (TIS: each token's weight π_old/μ clipped at sampling_correction_max), token_mask (MIS: "
        "weights outside the bounds set to 0), sequence_truncate, sequence_mask (one weight per completion); none: "
        "off. The generator returns its log-probs μ.",
        choices=SAMPLING_CORRECTIONS,
    )
    sampling_correction_max: float | None = param(
        3.0, "C_max of sampling_correction (TRL's vllm_importance_sampling_clip_max); None: no upper bound", low=0.0
    )
    sampling_correction_min: float | None = param(
        None, "C_min of sampling_correction (TRL's vllm_importance_sampling_clip_min); None: no lower bound", low=0.0
    )
    mask_truncated_completions: bool = param(
        False,
        "leave completions that reach max_new_tokens without an end token out of the loss (DAPO's overlong filtering)",
    )
    soft_overlong_cache: int = param(
        0,
        "L_cache of DAPO's soft overlong punishment: a completion longer than max_new_tokens − L_cache tokens loses "
        "reward linearly, down to −1 at max_new_tokens (0: off)",
        low=0,
    )
    dynamic_sampling: bool = param(
        False,
        "DAPO's dynamic sampling: drop groups whose G rewards are all equal (Â = 0) and sample more prompts until "
        "prompts_per_step groups remain, within max_sampling_rounds",
    )
    max_sampling_rounds: int = param(
        4,
        "dynamic sampling's cap: generation rounds per step; when it is reached, equal-reward groups fill the batch "
        "(logged as sampling/flat_groups_kept)",
        low=1,
    )
    num_iterations: int = param(1, "μ, optimisation passes over each generation batch", low=1)
    grad_accum_steps: int = param(1, "micro-batches per optimiser step (must divide P × G)", low=1)
    advantage: str = param(
        "group",
        "group: GRPO's group-relative Â (no critic); gae: a value head and token-level GAE (PPO for language models)",
        choices=("group", "gae"),
    )
    gamma: float = param(1.0, "γ of token-level GAE", low=0.0, high=1.0)
    gae_lambda: float = param(0.95, "λ of token-level GAE", low=0.0, high=1.0)
    vf_coef: float = param(0.1, "value-loss coefficient (advantage: gae)", low=0.0)

    @classmethod
    def translate(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """One layer of settings with TRL's GRPOConfig names and values as proxrl's (:mod:`proxrl.lm.trl_names`)."""
        return trl_names.translate(values, {f.name for f in dataclasses.fields(cls)})

    @classmethod
    def finish_translation(cls, values: dict[str, Any]) -> dict[str, Any]:
        """TRL's ``per_device_train_batch_size`` as ``prompts_per_step`` (:func:`proxrl.lm.trl_names.finish`)."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.name in ("grad_accum_steps", "group_size")}
        return trl_names.finish(values, defaults)

    def make_loss(self) -> GRPOLoss:
        """The loss of ``loss_type`` with this config's constants (:func:`proxrl.objectives.make_grpo_loss`), built
        once when GRPO is constructed; ε_high is ``clip_eps_high``, else ``clip_eps``."""
        return make_grpo_loss(
            self.loss_type,
            clip_low=self.clip_eps,
            clip_high=self.clip_eps_high if self.clip_eps_high is not None else self.clip_eps,
            beta=self.beta,
            importance_sampling_level=self.importance_sampling_level,
            kl_importance_weighted=self.use_bias_correction_kl,
            sapo_temperatures=(self.sapo_temperature_pos, self.sapo_temperature_neg),
            vespo_shape=(self.vespo_k_pos, self.vespo_lambda_pos, self.vespo_k_neg, self.vespo_lambda_neg),
            max_len=self.max_new_tokens,
        )

    def validate(self) -> None:
        """Cross-checks of GRPO's settings (a ``ConfigError`` naming the keys), then the language-model ones."""
        if (self.prompts_per_step * self.group_size) % self.grad_accum_steps:
            raise ConfigError(
                f"grad_accum_steps={self.grad_accum_steps} must divide prompts_per_step × group_size "
                f"= {self.prompts_per_step * self.group_size}"
            )
        super().validate()  # the language-model settings' own checks
        if self.ref_sync_every and self.lora:
            raise ConfigError(
                "ref_sync_every needs a separate reference model, but with lora=true the reference is "
                "the base model with adapters disabled; set ref_sync_every=0 or lora=false"
            )
        if self.fsdp and (self.lora or self.advantage == "gae"):
            raise ConfigError(
                "fsdp shards the policy alone: it takes neither lora=true nor advantage=gae (their adapters or value "
                "head sit outside the sharded model); set fsdp=false, or train every weight with advantage=group"
            )
        if self.importance_sampling_level == "sequence" and self.advantage == "gae":
            raise ConfigError(
                "importance_sampling_level=sequence (GSPO) needs one advantage per completion: set advantage=group"
            )
        if self.soft_overlong_cache >= self.max_new_tokens:
            raise ConfigError(
                f"soft_overlong_cache={self.soft_overlong_cache} must be below max_new_tokens={self.max_new_tokens}"
            )
        # As TRL accepts them: cispo's ε_max is clip_eps_high or else clip_eps (ScaleRL recommends 5.0; at or below 1
        # it caps every weight below 1), and ε_high < ε_low is an asymmetric clip; vespo's weight is the whole
        # completion's ratio at either importance_sampling_level (the level then sets only the k3 term's ρ)
        if self.loss_type == "vespo" and (self.advantage == "gae" or self.sampling_correction.startswith("sequence")):
            raise ConfigError(
                "loss_type=vespo weighs each completion by its own whole ratio, from per-token log-ratios and one Â "
                "per completion: keep advantage=group and a token_* (or no) sampling_correction"
            )


def reward_specs(funcs: Any) -> tuple[str, ...] | str:
    """``reward_funcs`` as the config holds them: one function (TRL takes a function, a model path or a list of
    them) or each of a list as its ``module:function`` path (:func:`~proxrl.config.object_path`); strings (paths, a
    reward model's folder) stay as they are."""
    if isinstance(funcs, str):
        return funcs
    if callable(funcs):
        funcs = [funcs]
    if not isinstance(funcs, (list, tuple)):
        raise ConfigError(
            f"reward_funcs is a {type(funcs).__name__}: give a reward function, a 'module:function' path, a local "
            "reward-model folder, or a list of them"
        )
    return tuple(f if isinstance(f, str) else object_path(f) for f in funcs)


def keyword_overrides(
    overrides: dict[str, Any], train_dataset: Any, eval_dataset: Any
) -> tuple[dict[str, Any], Any, Any]:
    """GRPO's keywords as config overrides, as TRL's GRPOTrainer takes them: a dataset given as a path is the
    ``dataset`` / ``eval_dataset`` key (kept for resuming; no dataset object then), ``reward_funcs`` as the config
    holds them (:func:`reward_specs`). Returns (overrides, train_dataset, eval_dataset)."""
    if isinstance(train_dataset, (str, Path)):  # a path is the config key (kept for resuming)
        overrides, train_dataset = {**overrides, "dataset": str(train_dataset)}, None
    if isinstance(eval_dataset, (str, Path)):
        overrides, eval_dataset = {**overrides, "eval_dataset": str(eval_dataset)}, None
    if overrides.get("reward_funcs") is not None:
        overrides = {**overrides, "reward_funcs": reward_specs(overrides["reward_funcs"])}
    return overrides, train_dataset, eval_dataset


def task_from_datasets(cfg: GRPOConfig, train: Any, evaluation: Any, tokenizer: Any) -> Any:
    """The training task of a dataset run: ``train``/``evaluation`` given in Python, else ``cfg.dataset`` and
    ``cfg.eval_dataset`` read from disk (a save_to_disk folder's 'test' split is the default held-out set)."""
    if train is None:
        assert cfg.dataset is not None, "a dataset run without a dataset"  # GRPO builds one only with either
        train = load_dataset(cfg.dataset)
    if evaluation is None and cfg.eval_dataset is not None:
        evaluation = load_dataset(cfg.eval_dataset)
    elif evaluation is None and cfg.dataset is not None and Path(cfg.dataset).is_dir():
        try:
            evaluation = load_dataset(cfg.dataset, split="test")
        except ConfigError:
            evaluation = None
    accuracy = load_callable(cfg.eval_metric, "eval_metric") if cfg.eval_metric else None
    return dataset_task(train, evaluation, tokenizer, accuracy, cfg.dataset or "train_dataset")
