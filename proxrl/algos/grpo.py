"""GRPO (Shao et al. 2024; the seed's GRPO section) on Hugging Face causal language models.

Each step: sample G completions for each of P prompts → score them with reward functions (and/or a reward
model) → group-relative advantages (``advantages.group_relative``) → μ passes of the clipped surrogate with the
k3 KL to a frozen reference model (``objectives.grpo_loss``) → log. No critic, unless ``advantage: gae`` adds a
value head for PPO-style token-level GAE (to compare GRPO with and without a critic on the same task).

``GRPO("addition").learn()`` builds the task's tiny model and warms it up; ``GRPO(model="path/to/folder")``
trains any local causal LM.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .. import checkpoint, lm
from . import agent
from ..advantages import REWARD_SCALINGS, flat_groups, group_relative
from ..config import ConfigError, object_path, param, run_directory
from ..lm.tasks import load_callable, load_task
from ..lm.config import LanguageModelConfig
from ..lm.critic import TokenCritic
from ..lm.trainer import LanguageModelTrainer
from ..lm import distributed, fsdp, trl_names
from ..lm.datasets import dataset_task, load_dataset
from ..lm.evaluation import HeldOutAccuracy
from ..lm.migrations import MIGRATIONS
from ..lm.reference import Reference
from ..lm.rewards import RewardError, Rewards, soft_overlong_penalty  # noqa: F401 - RewardError: this module's API
from ..lm.starting import starting_policy
from ..lm.step_stats import StepStats, step_row
from ..objectives import (
    IMPORTANCE_SAMPLING_LEVELS,
    LOSS_TYPES,
    SAMPLING_CORRECTIONS,
    bound_sampling_ratio,
    grpo_loss,
    sampling_ratio,
)
from ..optim import make_adam
from ..run import Session
from ..devices import resolve_device
from .common import begin, check_finite, check_gradient


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
    fsdp: bool = param(
        False,
        "under torchrun: shard the policy's and reference's weights, gradients and Adam state over the processes "
        "(torch FSDP2; for a model whose training state does not fit one device)",
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


class GRPO(LanguageModelTrainer):
    """GRPO on a text task. ``GRPO("addition", lr=1e-3).learn(100)``; ``.save(dir)`` writes the policy with
    ``save_pretrained`` (or its LoRA adapter), ``GRPO.load(dir)`` resumes."""

    algo = "grpo"
    final_checkpoint = "model"  # a save_pretrained folder
    migrations: ClassVar[dict[int, checkpoint.Migration]] = MIGRATIONS
    config_class = GRPOConfig
    sample_unit, bench_steps = "completions", 20  # `proxrl bench grpo`: 20 GRPO steps, in completions

    def __init__(
        self,
        env: str | None = None,
        config: GRPOConfig | None = None,
        *,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        run_dir: str | Path | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> None:
        """``env``: a text task (or ``train_dataset``: a ``datasets.Dataset`` or any sequence of row dicts with a
        ``prompt`` column, and ``eval_dataset`` the same, as TRL's GRPOTrainer takes them; a path to a local file or
        folder is the ``dataset`` / ``eval_dataset`` config key); ``overrides``: config keys, or TRL's GRPOConfig
        names of them (``proxrl.lm.trl_names``; ``output_dir`` is ``run_dir``). ``reward_funcs``, as in TRL, is
        one reward function or a list, each a function, a ``module:function`` path or a local reward-model folder."""
        if isinstance(train_dataset, (str, Path)):  # a path is the config key (kept for resuming)
            overrides, train_dataset = {**overrides, "dataset": str(train_dataset)}, None
        if isinstance(eval_dataset, (str, Path)):
            overrides, eval_dataset = {**overrides, "eval_dataset": str(eval_dataset)}, None
        run_dir = run_directory(run_dir, overrides.pop("output_dir", None))  # TRL's name of it
        if overrides.get("reward_funcs") is not None:
            overrides = {**overrides, "reward_funcs": reward_specs(overrides["reward_funcs"])}
        cfg = agent.build_config(GRPOConfig, config, env, overrides)
        begin(self, cfg, run_dir, progress)  # global_step counts GRPO steps, num_episodes completions
        from_data = train_dataset is not None or cfg.dataset is not None
        if from_data and cfg.model is None:
            raise ConfigError("a dataset needs model= (a local model folder with its tokenizer)")
        self.task: Any = None if from_data else load_task(cfg.env, cfg.env_kwargs)
        self.rng = random.Random(cfg.seed)
        device = resolve_device(cfg.device, num_params=2**63)  # auto: any language model is worth a GPU
        # data-parallel under torchrun: every process draws the same prompts and keeps its share
        self.world = distributed.from_environment(device)
        check_data_parallel(cfg, self.world)
        self.device = distributed.device_of(self.world, device)
        # the weights' dtype of the policy, the reference and the reward model
        self.dtype = dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
        self.policy, self.tokenizer, start = starting_policy(
            self.task, cfg, self.device, dtype, self.run_dir, self.world
        )
        self.python_dataset = train_dataset is not None
        if from_data:
            self.task = task_from_datasets(cfg, train_dataset, eval_dataset, self.tokenizer)
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
        if cfg.fsdp:  # after π_ref's copy
            fsdp.shard(self.policy)
            if self.reference.model is not None:
                fsdp.shard(self.reference.model)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        params += self.critic.parameters() if self.critic is not None else []
        self.optimizer = make_adam(params, cfg.lr, cfg.adam_eps, weight_decay=cfg.weight_decay)
        self.held_out = HeldOutAccuracy()

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

    def score(self, examples: list[dict[str, str]], gens: lm.Generations) -> tuple[Tensor, dict[str, Tensor]]:
        """Each completion's reward ``[P·G]`` and its components per completion: the reward functions (and model),
        and with ``soft_overlong_cache`` DAPO's soft overlong punishment (``reward/soft_overlong``)."""
        completion_ids = [
            row[m.bool()].tolist() for row, m in zip(gens.input_ids[:, gens.prompt_len :], gens.mask, strict=True)
        ]
        rewards, components = self.rewards.score(examples, gens.texts, completion_ids)
        if self.config.soft_overlong_cache:
            penalty = soft_overlong_penalty(
                gens.mask.sum(1).cpu(), self.config.max_new_tokens, self.config.soft_overlong_cache
            )
            rewards = rewards + penalty
            components["reward/soft_overlong"] = penalty
        return rewards, components

    def update(
        self,
        examples: list[dict[str, str]],
        gens: lm.Generations,
        scored: tuple[Tensor, dict[str, Tensor]] | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """Steps 2–3 of :meth:`learn` on one generation batch (``gens`` holds G completions of each of the P
        ``examples``, grouped by prompt): rewards (``scored``, else :meth:`score`), group-relative advantages
        Â_i = (r_i − mean)/(std + eps) within each prompt's group, then μ passes of the GRPO loss at this step's
        learning rate. Returns the rewards ``[P·G]`` and the step's stats (each reward component's mean, loss
        terms, ``lr``)."""
        cfg, world = self.config, self.world
        local, parts = scored if scored is not None else self.score(examples, gens)
        # data-parallel: the whole batch's rewards on every process (its advantages may need the batch's std)
        rewards = world.gather(local.float().cpu(), "the rewards")
        gathered = {name: world.gather(values.float().cpu(), "the reward components") for name, values in parts.items()}
        components = {name: values.nanmean().item() for name, values in gathered.items()}  # over the scores given
        grouped = rewards.view(-1, cfg.group_size)  # row p: the G completions of prompt p
        flat = flat_groups(grouped).float().mean().item()
        if gathered:  # a completion no reward function scored (all None) is left out of its group's Â (TRL 1.16)
            unscored = torch.stack(list(gathered.values())).isnan().all(0)
            grouped = grouped.masked_fill(unscored.view_as(grouped), math.nan)
        adv = group_relative(grouped, cfg.scale_rewards).reshape(-1, 1)[world.shard(rewards.numel())]
        adv = adv.to(self.device)
        if not self.policy.training:
            self.policy.train()
        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        stats = self._optimise(gens, adv, local.to(self.device))
        return rewards, {**components, "flat_groups": flat, "lr": lr, **stats}

    def sample_batch(
        self,
    ) -> tuple[list[dict[str, str]], lm.Generations, tuple[Tensor, dict[str, Tensor]], dict[str, float]]:
        """Step 1 of :meth:`learn`: P prompts and G completions of each from π_θ, scored. With ``dynamic_sampling``
        (DAPO) groups whose rewards are all equal are dropped and further rounds of P prompts are sampled until P
        groups remain or ``max_sampling_rounds`` is reached, when dropped groups fill the batch in the order they
        came. Returns (examples, generations, (rewards, components), sampling stats; without dynamic sampling on
        several processes none: :meth:`learn` logs the round's share from :meth:`update`'s whole-batch rewards)."""
        cfg = self.config
        P, G = cfg.prompts_per_step, cfg.group_size
        rounds: list[tuple[list[dict[str, str]], lm.Generations, tuple[Tensor, dict[str, Tensor]]]] = []
        kept: list[tuple[int, int]] = []  # (round, group) of the groups that vary
        flat: list[tuple[int, int]] = []
        while not rounds or (cfg.dynamic_sampling and len(kept) < P and len(rounds) < cfg.max_sampling_rounds):
            examples = self.task.sample(self.rng, P)[self.world.shard(P)]  # every process draws all P: same rng
            with fsdp.gathered(self.policy):
                gens = lm.generate(
                    self.policy,
                    self.tokenizer,
                    [ex["prompt"] for ex in examples],
                    G,
                    cfg.max_new_tokens,
                    cfg.temperature,
                    cfg.top_p,
                    world=self.world,
                    sampling_logps=cfg.sampling_correction != "none",
                )
            scored = self.score(examples, gens)
            if cfg.dynamic_sampling and self.world.active:  # every process keeps the same groups, stops alike
                examples, gens, scored = self._whole_round(examples, gens, scored)
            if self.world.active and not cfg.dynamic_sampling:
                # this process's share of one round: update() gathers the batch's rewards once, and learn() logs
                # the round's flat-group share from them (its ``flat_groups``) instead of a second gather here
                return examples, gens, scored, {}
            is_flat = flat_groups(scored[0].view(-1, G)).tolist()
            for p in range(P):
                (flat if is_flat[p] else kept).append((len(rounds), p))
            rounds.append((examples, gens, scored))
        stats = {"sampling/flat_groups_generated": len(flat) / (P * len(rounds))}
        if not cfg.dynamic_sampling:
            return *rounds[0], stats
        fill = max(0, P - len(kept))  # flat groups that fill the batch once the rounds run out
        chosen = (kept[:P] + flat[:fill])[self.world.shard(P)]  # whole rounds (data-parallel): this process's share
        stats.update(
            {
                "sampling/rounds": float(len(rounds)),
                "sampling/groups_dropped": float(len(flat) - fill),
                "sampling/flat_groups_kept": float(fill),
            }
        )
        parts = []
        for r, (examples, gens, (rewards, components)) in enumerate(rounds):
            groups = [p for rr, p in chosen if rr == r]
            if groups:
                rows = torch.tensor([p * G + g for p in groups for g in range(G)])
                parts.append(
                    (
                        [examples[p] for p in groups],
                        gens.groups(groups),
                        rewards[rows],
                        {k: v[rows] for k, v in components.items()},
                    )
                )
        examples = [ex for part in parts for ex in part[0]]
        gens = lm.Generations.concat([part[1] for part in parts], self.tokenizer.pad_token_id)
        rewards = torch.cat([part[2] for part in parts])
        components = {k: torch.cat([part[3][k] for part in parts]) for k in parts[0][3]}
        return examples, gens.to(self.device), (rewards, components), stats

    def _whole_round(
        self, examples: list[dict[str, str]], gens: lm.Generations, scored: tuple[Tensor, dict[str, Tensor]]
    ) -> tuple[list[dict[str, str]], lm.Generations, tuple[Tensor, dict[str, Tensor]]]:
        """Data-parallel dynamic sampling: every process's share of a round of prompts, completions and scores,
        joined in rank order (the round one process would have drawn), on the CPU. Gathered whole rather than as
        flags so that the batch the rounds fill is the one-process batch, whichever process sampled a group."""
        rewards, components = scored
        mine = (examples, gens.to("cpu"), rewards.cpu(), {k: v.cpu() for k, v in components.items()})
        parts = self.world.gather_objects(mine, "the groups of a dynamic-sampling round")
        joined = lm.Generations.concat([part[1] for part in parts], self.tokenizer.pad_token_id)
        whole = (
            torch.cat([part[2] for part in parts]),
            {k: torch.cat([part[3][k] for part in parts]) for k in components},
        )
        return [ex for part in parts for ex in part[0]], joined, whole

    def _optimise(self, gens: lm.Generations, adv: Tensor, rewards: Tensor) -> dict[str, float]:
        """μ passes of the GRPO loss over the generation batch in ``grad_accum_steps`` micro-batches (with a
        token critic: its GAE advantages and value loss instead of the group-relative Â)."""
        cfg, critic, world = self.config, self.critic, self.world
        rows = gens.input_ids.shape[0]  # this process's; the batch has rows × world.size
        micro_batches = micro_batches_per_process(cfg.grad_accum_steps, world.size)
        mask = gens.mask.float()
        if cfg.mask_truncated_completions and gens.truncated is not None:  # DAPO's overlong filtering
            mask = mask * (~gens.truncated).to(mask.device, mask.dtype).unsqueeze(1)
        ref_logp = self.reference.logps(self.policy, lambda model: self._logps(model, gens)[0])
        old_logp = returns = None
        if cfg.num_iterations > 1 or critic is not None:  # π_old is needed past the first pass
            with torch.no_grad():
                old_logp, hidden = self._logps(self.policy, gens, with_hidden=critic is not None)
        if critic is not None:
            adv, returns = critic.advantages(rewards, hidden, mask)
        micro = rows // micro_batches
        # a step starts from no gradient: one left on the weights (the supervised warm-up's last, a user's
        # backward) would otherwise be added to the first pass's
        self.optimizer.zero_grad(set_to_none=True)
        num_tokens = world.all_sum(mask.sum(), "the token count").clamp(min=1.0)  # the whole batch's (DAPO)
        totals = StepStats(
            mask,
            num_tokens,
            micro_batches,
            cfg.num_iterations,
            cfg.importance_sampling_level == "sequence",
            world.size,
        )
        for _ in range(cfg.num_iterations):
            for k, start in enumerate(range(0, rows, micro)):
                sl = slice(start, start + micro)
                logp, hidden = self._logps(self.policy, gens, sl, with_hidden=critic is not None)
                # μ = 1: π_old is the policy itself (ratio 1, gradient of the ratio = ∇ log π)
                old = logp.detach() if old_logp is None else old_logp[sl]
                weight = self._sampling_weight(old, gens, mask, sl, k, totals)
                loss, stats = grpo_loss(
                    logp,
                    old,
                    adv[sl],
                    mask[sl],
                    cfg.clip_eps,
                    cfg.clip_eps_high if cfg.clip_eps_high is not None else cfg.clip_eps,
                    None if ref_logp is None else ref_logp[sl],
                    cfg.beta,
                    cfg.loss_type,
                    cfg.importance_sampling_level,
                    weight,
                    (cfg.sapo_temperature_pos, cfg.sapo_temperature_neg),
                    (cfg.vespo_k_pos, cfg.vespo_lambda_pos, cfg.vespo_k_neg, cfg.vespo_lambda_neg),
                    cfg.use_bias_correction_kl,
                    max_len=cfg.max_new_tokens,
                    num_sequences=rows * world.size,
                    num_tokens=num_tokens,
                    num_micro_batches=micro_batches * world.size,
                )
                if critic is not None:
                    v_loss = critic.loss(hidden, returns[sl], mask[sl], num_tokens)
                    loss = loss + cfg.vf_coef * v_loss
                    totals.add_loss("value_loss", v_loss)
                if not math.isfinite(loss.item()):
                    check_finite(self.global_step, loss=loss)
                loss.backward()
                totals.add(k, loss, stats)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            if not cfg.fsdp:  # (FSDP summed them in the backward passes, each process keeping its shard)
                world.sum_gradients(params)  # each process's loss is its part of the batch's: the sum is the batch's
            norm = nn.utils.clip_grad_norm_(
                params,
                cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf,
                foreach=True,
            )
            check_gradient(self.global_step, norm)
            totals.set("grad_norm", float(norm))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return totals.result(world)

    def _sampling_weight(
        self, old: Tensor, gens: lm.Generations, mask: Tensor, rows: slice, k: int, totals: StepStats
    ) -> Tensor | None:
        """With ``sampling_correction``: the weight π_old/μ of micro-batch ``k`` (``rows``; see
        :func:`sampling_correction`), and its stats added to ``totals``: per token, the mismatch |ln π_old − ln μ|
        (mean and max), the weight's mean and the share of weights the bounds changed (truncated or masked)."""
        cfg = self.config
        if cfg.sampling_correction == "none":
            return None
        if gens.sampling_logps is None:
            raise RuntimeError("sampling_correction needs the sampler's log-probs, and the generation gave none")
        sampling_logp, m = gens.sampling_logps[rows].to(old.device), mask[rows]
        raw = sampling_ratio(old, sampling_logp, m, cfg.sampling_correction)
        weight = bound_sampling_ratio(
            raw, cfg.sampling_correction, cfg.sampling_correction_max, cfg.sampling_correction_min
        )
        with torch.no_grad():
            gap = torch.nan_to_num((old - sampling_logp).abs() * m, nan=0.0)  # a token with no μ: no gap counted
            tokens = m.sum().clamp(min=1.0)
            totals.add_token_means(
                k,
                {
                    "sampling/logp_gap_mean": gap.sum() / tokens,
                    "sampling/is_weight_mean": (weight * m).sum() / tokens,
                    "sampling/is_weight_corrected": ((weight != raw).to(m.dtype) * m).sum() / tokens,
                },
            )
            totals.max("sampling/logp_gap_max", gap.max())
        return weight

    def learning_rate(self) -> float:
        """α at the current step: linear warm-up over ``lr_warmup_steps``, then constant."""
        warmup = self.config.lr_warmup_steps
        return self.config.lr * min(1.0, (self.global_step + 1) / warmup) if warmup else self.config.lr

    # --- the loop ----------------------------------------------------------------------------------------
    def train(self) -> GRPO:
        """TRL's ``GRPOTrainer.train()``: :meth:`learn` until ``total_steps`` (TRL's ``max_steps``)."""
        return self.learn()

    def learn(
        self, total_steps: int | None = None, callback: Callable[[GRPO, dict[str, Any]], bool | None] | None = None
    ) -> GRPO:
        """Run ``total_steps`` GRPO steps (default: until ``config.total_steps``); ``callback(agent, row)`` after
        each step may return False to stop."""
        cfg = self.config
        if self.held_out.last is None:  # 0. the starting policy's held-out accuracy (after any warm-up)
            self.held_out.record(self.evaluate(), start=True)
        with Session(self, total_steps, processes=self.world) as session:
            for stats in session.iterations(callback):
                # 1. P prompts, G completions each from π_θ, scored (dynamic sampling: groups that vary)
                with session.timed("collect"):
                    examples, gens, scored, sampling = self.sample_batch()
                # 2.–3. group-relative advantages, μ passes of the loss
                with session.timed("update"):
                    rewards, update_stats = self.update(examples, gens, scored)
                    self.progress.advance(1, [rewards.mean().item()], episodes=rewards.numel(), samples=rewards.numel())
                    if cfg.ref_sync_every and self.global_step % cfg.ref_sync_every == 0:
                        self.reference.sync(self.policy)
                # 4. evaluate; the session logs and checkpoints when this iteration's body ends
                if (cfg.eval_every and self.global_step % cfg.eval_every == 0) or self.global_step == session.target:
                    self.held_out.record(self.evaluate())
                seconds = stats["collect_seconds"] + stats["update_seconds"]
                # one round (no dynamic sampling): its flat-group share is the batch's, counted by update()
                sampling.setdefault("sampling/flat_groups_generated", update_stats["flat_groups"])
                stats.update(
                    step_row(rewards, gens, self.held_out, bool(cfg.eval_samples), seconds, self.world),
                    **sampling,
                    **update_stats,
                )
        return self


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


def task_from_datasets(cfg: GRPOConfig, train: Any, evaluation: Any, tokenizer: Any) -> Any:
    """The training task of a dataset run: ``train``/``evaluation`` given in Python, else ``cfg.dataset`` and
    ``cfg.eval_dataset`` read from disk (a save_to_disk folder's 'test' split is the default held-out set)."""
    if train is None:
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


def micro_batches_per_process(grad_accum_steps: int, processes: int) -> int:
    """Micro-batches each of ``processes`` runs per optimiser step: ``grad_accum_steps`` counts them over the whole
    batch, so each process runs its share; 1 (the default) means one per process."""
    return max(1, grad_accum_steps // processes)


def check_data_parallel(cfg: GRPOConfig, world: distributed.World) -> None:
    """What a data-parallel run of ``world.size`` processes needs of the config (one line each, else)."""
    if not world.active:
        if cfg.fsdp:
            raise ConfigError(
                "fsdp shards the model over the processes of a torchrun launch, and this is one process: "
                "torchrun --nproc-per-node N -m proxrl.cli train grpo ..., or set fsdp=false"
            )
        return
    n = world.size
    if cfg.prompts_per_step % n:
        raise ConfigError(
            f"prompts_per_step={cfg.prompts_per_step} must be divisible by the {n} processes "
            "(each takes a whole share of the prompts, their groups whole)"
        )
    if cfg.grad_accum_steps > 1 and cfg.grad_accum_steps % n:
        raise ConfigError(
            f"grad_accum_steps={cfg.grad_accum_steps} counts micro-batches over all {n} processes: "
            f"set a multiple of {n} (or 1: one micro-batch per process)"
        )
