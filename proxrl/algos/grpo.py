"""GRPO (Shao et al. 2024; the seed's GRPO section) on Hugging Face causal language models.

Each step: sample G completions for each of P prompts → score them with reward functions (and/or a reward
model) → group-relative advantages (``advantages.group_relative``) → μ passes of the clipped surrogate with the
k3 KL to a frozen reference model (``objectives.grpo_loss``) → log. No critic, unless ``advantage: gae`` adds a
value head for PPO-style token-level GAE (to compare GRPO with and without a critic on the same task).

``GRPO("addition").learn()`` builds the task's tiny model and warms it up; ``GRPO(model="path/to/folder")``
trains any local causal LM.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .. import checkpoint, lm
from . import agent
from ..advantages import REWARD_SCALINGS, flat_groups, group_relative
from ..config import ConfigError, param
from ..envs.text_tasks import load_task
from ..lm.config import LanguageModelConfig
from ..lm.critic import TokenCritic
from ..lm import trainer as lm_trainer
from ..lm.evaluation import HeldOutAccuracy
from ..lm.migrations import MIGRATIONS
from ..lm.reference import Reference
from ..lm.rewards import RewardError, Rewards  # noqa: F401 - RewardError is part of this module's API
from ..lm.starting import starting_policy
from ..lm.step_stats import StepStats, step_row
from ..objectives import AGGREGATIONS, grpo_loss
from ..optim import make_adam
from ..run import GLOBAL_STEP, Session
from .common import begin, check_finite, check_gradient, resolve_device


@dataclass(frozen=True, kw_only=True)
class GRPOConfig(LanguageModelConfig):
    """GRPO hyperparameters, named as in the paper and TRL's GRPOConfig where they overlap (the text task, model,
    rewards, sampling and evaluation settings are ``lm.config.LanguageModelConfig``'s)."""

    algo = "grpo"

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
    ref_sync_every: int = param(0, "copy the policy into the reference model every this many steps (0: never)", low=0)
    scale_rewards: str = param(
        "group", "advantage scale: group std (paper), batch std, or none (Dr. GRPO)", choices=REWARD_SCALINGS
    )
    aggregation: str = param(
        "sequence",
        "loss over tokens: sequence (mean per completion, then over "
        "completions; paper), token (mean over all tokens; DAPO), constant (sum / (B · "
        "max_new_tokens); Dr. GRPO)",
        choices=AGGREGATIONS,
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

    def validate(self) -> None:
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
        if self.clip_eps_high is not None and self.clip_eps_high < self.clip_eps:
            raise ConfigError(
                f"clip_eps_high={self.clip_eps_high} is below clip_eps={self.clip_eps}; "
                "ε_high ≥ ε_low (or None for ε_high = ε_low)"
            )


class GRPO:
    """GRPO on a text task. ``GRPO("addition", lr=1e-3).learn(100)``; ``.save(dir)`` writes the policy with
    ``save_pretrained`` (or its LoRA adapter), ``GRPO.load(dir)`` resumes."""

    algo = "grpo"
    final_checkpoint = "model"  # a save_pretrained folder
    migrations: ClassVar[dict[int, checkpoint.Migration]] = MIGRATIONS
    config_class = GRPOConfig
    global_step = GLOBAL_STEP
    sample_unit, bench_steps = "completions", 20  # `proxrl bench grpo`: 20 GRPO steps, in completions

    def __init__(
        self,
        env: str | None = None,
        config: GRPOConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> None:
        cfg = agent.build_config(GRPOConfig, config, env, overrides)
        begin(self, cfg, run_dir, progress)  # global_step counts GRPO steps, num_episodes completions
        self.task = load_task(cfg.env, cfg.env_kwargs)
        self.rng = random.Random(cfg.seed)
        self.device = resolve_device(cfg.device, num_params=2**63)  # auto: any language model is worth a GPU
        # the weights' dtype of the policy, the reference and the reward model
        self.dtype = dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
        self.policy, self.tokenizer, start = starting_policy(self.task, cfg, self.device, dtype, self.run_dir)
        self.rewards = Rewards.build(
            cfg.reward_funcs,
            cfg.reward_weights,
            self.task.rewards,
            cfg.reward_model,
            cfg.reward_model_weight,
            dtype,
            self.device,
        )
        if cfg.lora:
            self.policy = lm.with_lora(self.policy, cfg.lora_r, cfg.lora_alpha)
        # π_ref, read back on resume from the folder the run started from (the model, or the tiny model's)
        self.reference = Reference(self.policy, cfg.beta, cfg.lora, start)
        # advantage: gae adds a token-level critic (PPO for LMs); GRPO proper has none
        self.critic = (
            TokenCritic(self.policy.config.hidden_size, self.device, cfg.gamma, cfg.gae_lambda)
            if cfg.advantage == "gae"
            else None
        )
        params = [p for p in self.policy.parameters() if p.requires_grad]
        params += self.critic.parameters() if self.critic is not None else []
        self.optimizer = make_adam(params, cfg.lr, cfg.adam_eps, weight_decay=cfg.weight_decay)
        self.held_out = HeldOutAccuracy()

    evaluate = lm_trainer.evaluate
    describe_evaluation = lm_trainer.describe_evaluation
    summary = lm_trainer.summary
    state_dict = lm_trainer.state_dict
    save = lm_trainer.save
    save_checkpoint = lm_trainer.save_checkpoint
    load = classmethod(lm_trainer.load)
    close = lm_trainer.close

    # --- one step ----------------------------------------------------------------------------------------
    def _logps(
        self, model: Any, gens: lm.Generations, rows: slice = slice(None), with_hidden: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """log π of the completion tokens of ``rows`` (and the hidden states that predicted them)."""
        input_ids, attention = gens.input_ids[rows], gens.attention_mask[rows]
        shared = gens.group_size if input_ids.shape[0] % gens.group_size == 0 else 1  # whole groups: one prefill
        return lm.token_logps(
            model, input_ids, attention, gens.prompt_len, self.config.temperature, with_hidden, group_size=shared
        )

    def update(self, examples: list[dict[str, str]], gens: lm.Generations) -> tuple[Tensor, dict[str, float]]:
        """Steps 2–3 of :meth:`learn` on one generation batch (``gens`` holds G completions of each of the P
        ``examples``, grouped by prompt): rewards, group-relative advantages Â_i = (r_i − mean)/(std + eps) within
        each prompt's group, then μ passes of the GRPO loss at this step's learning rate. Returns the rewards
        ``[P·G]`` and the step's stats (each reward component, ``flat_groups``, loss terms, ``lr``)."""
        cfg = self.config
        rewards, components = self.rewards.score(examples, gens.texts)
        grouped = rewards.view(len(examples), cfg.group_size)  # row p: the G completions of prompt p
        adv = group_relative(grouped, cfg.scale_rewards).reshape(-1, 1).to(self.device)
        if not self.policy.training:
            self.policy.train()
        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        stats = self._optimise(gens, adv, rewards.to(self.device))
        return rewards, {**components, "flat_groups": flat_groups(grouped).float().mean().item(), "lr": lr, **stats}

    def _optimise(self, gens: lm.Generations, adv: Tensor, rewards: Tensor) -> dict[str, float]:
        """μ passes of the GRPO loss over the generation batch in ``grad_accum_steps`` micro-batches (with a
        token critic: its GAE advantages and value loss instead of the group-relative Â)."""
        cfg, critic = self.config, self.critic
        rows = gens.input_ids.shape[0]
        mask = gens.mask.float()
        ref_logp = self.reference.logps(self.policy, lambda model: self._logps(model, gens)[0])
        old_logp = returns = None
        if cfg.num_iterations > 1 or critic is not None:  # π_old is needed past the first pass
            with torch.no_grad():
                old_logp, hidden = self._logps(self.policy, gens, with_hidden=critic is not None)
        if critic is not None:
            adv, returns = critic.advantages(rewards, hidden, mask)
        micro = rows // cfg.grad_accum_steps
        # a step starts from no gradient: one left on the weights (the supervised warm-up's last, a user's
        # backward) would otherwise be added to the first pass's
        self.optimizer.zero_grad(set_to_none=True)
        num_tokens = mask.sum().clamp(min=1.0)
        totals = StepStats(mask, num_tokens, cfg.grad_accum_steps, cfg.num_iterations)
        for _ in range(cfg.num_iterations):
            for k, start in enumerate(range(0, rows, micro)):
                sl = slice(start, start + micro)
                logp, hidden = self._logps(self.policy, gens, sl, with_hidden=critic is not None)
                # μ = 1: π_old is the policy itself (ratio 1, gradient of the ratio = ∇ log π)
                old = logp.detach() if old_logp is None else old_logp[sl]
                loss, stats = grpo_loss(
                    logp,
                    old,
                    adv[sl],
                    mask[sl],
                    cfg.clip_eps,
                    cfg.clip_eps_high if cfg.clip_eps_high is not None else cfg.clip_eps,
                    None if ref_logp is None else ref_logp[sl],
                    cfg.beta,
                    cfg.aggregation,
                    max_len=cfg.max_new_tokens,
                    num_sequences=rows,
                    num_tokens=num_tokens,
                )
                if critic is not None:
                    v_loss = critic.loss(hidden, returns[sl], mask[sl], num_tokens)
                    loss = loss + cfg.vf_coef * v_loss
                    totals.add_loss("value_loss", v_loss)
                if not math.isfinite(loss.item()):
                    check_finite(self.global_step, loss=loss)
                loss.backward()
                totals.add(k, loss, stats)
            norm = nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]],
                cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf,
                foreach=True,
            )
            check_gradient(self.global_step, norm)
            totals.set("grad_norm", float(norm))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return totals.result()

    def learning_rate(self) -> float:
        """α at the current step: linear warm-up over ``lr_warmup_steps``, then constant."""
        warmup = self.config.lr_warmup_steps
        return self.config.lr * min(1.0, (self.global_step + 1) / warmup) if warmup else self.config.lr

    # --- the loop ----------------------------------------------------------------------------------------
    def learn(
        self, total_steps: int | None = None, callback: Callable[[GRPO, dict[str, Any]], bool | None] | None = None
    ) -> GRPO:
        """Run ``total_steps`` GRPO steps (default: until ``config.total_steps``); ``callback(agent, row)`` after
        each step may return False to stop."""
        cfg = self.config
        if self.held_out.last is None:  # 0. the starting policy's held-out accuracy (after any warm-up)
            self.held_out.record(self.evaluate(), start=True)
        with Session(self, total_steps) as session:
            for stats in session.iterations(callback):
                # 1. P prompts, G completions each from π_θ
                with session.timed("collect"):
                    examples = self.task.sample(self.rng, cfg.prompts_per_step)
                    gens = lm.generate(
                        self.policy,
                        self.tokenizer,
                        [ex["prompt"] for ex in examples],
                        cfg.group_size,
                        cfg.max_new_tokens,
                        cfg.temperature,
                        cfg.top_p,
                    )
                # 2.–3. rewards, group-relative advantages, μ passes of the loss
                with session.timed("update"):
                    rewards, update_stats = self.update(examples, gens)
                    self.progress.advance(1, [rewards.mean().item()], episodes=rewards.numel(), samples=rewards.numel())
                    if cfg.ref_sync_every and self.global_step % cfg.ref_sync_every == 0:
                        self.reference.sync(self.policy)
                # 4. evaluate; the session logs and checkpoints when this iteration's body ends
                if (cfg.eval_every and self.global_step % cfg.eval_every == 0) or self.global_step == session.target:
                    self.held_out.record(self.evaluate())
                seconds = stats["collect_seconds"] + stats["update_seconds"]
                stats.update(
                    step_row(rewards, gens.mask, self.held_out, bool(cfg.eval_samples), seconds), **update_stats
                )
        return self
