"""GRPO (Shao et al. 2024; the seed's GRPO section) on Hugging Face causal language models.

Each step: sample G completions for each of P prompts → score them with reward functions (and/or a reward
model) → group-relative advantages (``advantages.group_relative``) → μ passes of the clipped surrogate with the
k3 KL to a frozen reference model (``objectives.GRPOLoss``, picked by ``loss_type``) → log. No critic, unless
``advantage: gae`` adds a value head for PPO-style token-level GAE (to compare GRPO with and without a critic on
the same task). Settings: ``algos/grpo_config.py``; DAPO's dynamic sampling: ``lm/dynamic_sampling.py``.

``GRPO("addition").learn()`` builds the task's tiny model and warms it up; ``GRPO(model="path/to/folder")``
trains any local causal LM.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .. import checkpoint, lm
from . import agent
from ..advantages import flat_groups, group_relative
from ..config import ConfigError, RunConfig, run_directory
from ..lm.tasks import load_task
from ..lm.critic import TokenCritic
from ..lm.trainer import LanguageModelTrainer
from ..lm import distributed, dynamic_sampling, fsdp
from ..lm.data_parallel import check_data_parallel, micro_batches_per_process
from ..lm.evaluation import HeldOutAccuracy
from ..lm.migrations import MIGRATIONS
from ..lm.reference import Reference
from ..lm.rewards import RewardError, Rewards, soft_overlong_penalty  # noqa: F401 - RewardError: this module's API
from ..lm.starting import starting_policy
from ..lm.step_stats import StepStats, step_row
from ..objectives import GRPOBatch, corrected_sampling_weight
from ..optim import make_adam
from ..run import Session
from ..devices import resolve_device
from .common import begin, check_finite, check_gradient
from .grpo_config import GRPOConfig, keyword_overrides, reward_specs, task_from_datasets  # noqa: F401 - re-exported


class GRPO(LanguageModelTrainer):
    """GRPO on a text task. ``GRPO("addition", lr=1e-3).learn(100)``; ``.save(dir)`` writes the policy with
    ``save_pretrained`` (or its LoRA adapter), ``GRPO.load(dir)`` resumes."""

    algo = "grpo"
    migrations: ClassVar[Mapping[int, checkpoint.Migration]] = MIGRATIONS
    config_class: ClassVar[type[RunConfig]] = GRPOConfig
    config: GRPOConfig
    bench_steps = 20  # `proxrl bench grpo`: 20 GRPO steps (its sample_unit: completions)

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
        overrides, train_dataset, eval_dataset = keyword_overrides(overrides, train_dataset, eval_dataset)
        run_dir = run_directory(run_dir, overrides.pop("output_dir", None))  # TRL's name of it
        cfg = agent.build_config(GRPOConfig, config, env, overrides)
        begin(self, cfg, run_dir, progress)  # global_step counts GRPO steps, num_episodes completions
        from_data = train_dataset is not None or cfg.dataset is not None
        if from_data and cfg.model is None:
            raise ConfigError("a dataset needs model= (a local model folder with its tokenizer)")
        self.task = None if from_data else load_task(cfg.env, cfg.env_kwargs)  # type: ignore[assignment]
        self.rng = random.Random(cfg.seed)
        device = resolve_device(cfg.device, num_params=2**63)  # auto: any language model is worth a GPU
        # data-parallel under torchrun: every process draws the same prompts and keeps its share
        self.world = distributed.from_environment(device)
        check_data_parallel(self.world, cfg.prompts_per_step, cfg.grad_accum_steps, cfg.fsdp)
        self.device = distributed.device_of(self.world, device)
        # the weights' dtype of the policy, the reference and the reward model
        self.dtype = dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
        self.policy, self.tokenizer, start = starting_policy(
            self.task, cfg, self.device, dtype, self.run_dir, self.world
        )
        self.python_dataset = train_dataset is not None
        if from_data:
            self.task = task_from_datasets(cfg, train_dataset, eval_dataset, self.tokenizer)
        scoring = (cfg.reward_funcs, cfg.reward_weights, self.task.rewards, cfg.reward_model, cfg.reward_model_weight)
        self.rewards = Rewards.build(*scoring, dtype, self.device)
        self._build_learner(start)
        self.held_out = HeldOutAccuracy()

    def _build_learner(self, start: Any) -> None:
        """What the update trains and reads: LoRA adapters, π_ref, the critic (``advantage: gae``), the FSDP
        shards, AdamW and the loss of ``loss_type`` (picked here, once)."""
        cfg = self.config
        if cfg.lora:
            self.policy = lm.with_lora(self.policy, cfg.lora_r, cfg.lora_alpha)
        # π_ref, read back on resume from the folder the run started from (the model, or the tiny model's)
        self.reference = Reference(self.policy, cfg.beta, cfg.lora, start)
        self.critic = None  # advantage: gae adds a token-level critic (PPO for LMs); GRPO proper has none
        if cfg.advantage == "gae":
            self.critic = TokenCritic(self.policy.config.hidden_size, self.device, cfg.gamma, cfg.gae_lambda)
        if cfg.fsdp:  # after π_ref's copy
            fsdp.shard(self.policy)
            if self.reference.model is not None:
                fsdp.shard(self.reference.model)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        params += self.critic.parameters() if self.critic is not None else []
        self.optimizer = make_adam(params, cfg.lr, cfg.adam_eps, weight_decay=cfg.weight_decay)
        self.loss = cfg.make_loss()

    # --- one step ----------------------------------------------------------------------------------------
    def _logps(
        self, model: Any, gens: lm.Generations, rows: slice = slice(None), with_hidden: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """log π of the completion tokens of ``rows`` (and the hidden states that predicted them)."""
        input_ids, attention = gens.input_ids[rows], gens.attention_mask[rows]
        shared = gens.group_size if input_ids.shape[0] % gens.group_size == 0 else 1  # whole groups: one prefill
        temperature = self.config.temperature  # the sampler's: π_θ is the distribution the completions came from
        return lm.token_logps(model, input_ids, attention, gens.prompt_len, temperature, with_hidden, group_size=shared)

    def score(self, examples: list[dict[str, str]], gens: lm.Generations) -> dynamic_sampling.Scored:
        """Each completion's reward ``[P·G]`` and its components per completion: the reward functions (and model),
        and with ``soft_overlong_cache`` DAPO's soft overlong punishment (``reward/soft_overlong``)."""
        completion_ids = [
            row[m.bool()].tolist() for row, m in zip(gens.input_ids[:, gens.prompt_len :], gens.mask, strict=True)
        ]
        rewards, components = self.rewards.score(examples, gens.texts, completion_ids)
        cfg = self.config
        if cfg.soft_overlong_cache:
            penalty = soft_overlong_penalty(gens.mask.sum(1).cpu(), cfg.max_new_tokens, cfg.soft_overlong_cache)
            rewards = rewards + penalty
            components["reward/soft_overlong"] = penalty
        return rewards, components

    def update(
        self,
        examples: list[dict[str, str]],
        gens: lm.Generations,
        scored: dynamic_sampling.Scored | None = None,
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

    def sample_batch(self) -> tuple[list[dict[str, str]], lm.Generations, dynamic_sampling.Scored, dict[str, float]]:
        """Step 1 of :meth:`learn`: P prompts and G completions of each from π_θ, scored. With ``dynamic_sampling``
        (DAPO) groups whose rewards are all equal are dropped and further rounds of P prompts are sampled until P
        groups remain or ``max_sampling_rounds`` is reached, when dropped groups fill the batch in the order they
        came (:mod:`proxrl.lm.dynamic_sampling`). Returns (examples, generations, (rewards, components), sampling
        stats; none without dynamic sampling on several processes: :meth:`learn` takes :meth:`update`'s)."""
        cfg, P, G = self.config, self.config.prompts_per_step, self.config.group_size
        if cfg.dynamic_sampling:
            pad = self.tokenizer.pad_token_id
            rounds = dynamic_sampling.sample_groups(self._sample_round, P, G, cfg.max_sampling_rounds, self.world, pad)
            (examples, gens, scored), stats = rounds
            return examples, gens.to(self.device), scored, stats
        examples, gens, scored = self._sample_round()
        if self.world.active:
            # this process's share of one round: update() gathers the batch's rewards once, and learn() logs
            # the round's flat-group share from them (its ``flat_groups``) instead of a second gather here
            return examples, gens, scored, {}
        share = dynamic_sampling.flat_share(scored, G)
        return examples, gens, scored, {"sampling/flat_groups_generated": share}

    def _sample_round(self) -> dynamic_sampling.Round:
        """One round: this process's share of P prompts (every process draws all P: the same rng) and G
        completions of each from π_θ, scored."""
        cfg, P = self.config, self.config.prompts_per_step
        examples = self.task.sample(self.rng, P)[self.world.shard(P)]
        with fsdp.gathered(self.policy):
            gens = lm.generate(
                self.policy,
                self.tokenizer,
                [ex["prompt"] for ex in examples],
                cfg.group_size,
                cfg.max_new_tokens,
                cfg.temperature,
                cfg.top_p,
                world=self.world,
                sampling_logps=cfg.sampling_correction != "none",
            )
        return examples, gens, self.score(examples, gens)

    def _optimise(self, gens: lm.Generations, adv: Tensor, rewards: Tensor) -> dict[str, float]:
        """μ passes of the GRPO loss over the generation batch in ``grad_accum_steps`` micro-batches (with a
        token critic: its GAE advantages and value loss instead of the group-relative Â)."""
        cfg, critic, world = self.config, self.critic, self.world
        rows = gens.input_ids.shape[0]  # this process's; the batch has rows × world.size
        micro_batches = micro_batches_per_process(cfg.grad_accum_steps, world.size)
        mask, adv, old_logp, ref_logp, returns = self._step_tensors(gens, adv, rewards)
        micro = rows // micro_batches
        # a step starts from no gradient: one left on the weights (the supervised warm-up's last, a user's
        # backward) would otherwise be added to the first pass's
        self.optimizer.zero_grad(set_to_none=True)
        num_tokens = world.all_sum(mask.sum(), "the token count").clamp(min=1.0)  # the whole batch's (DAPO)
        sequence_level = cfg.importance_sampling_level == "sequence"
        totals = StepStats(mask, num_tokens, micro_batches, cfg.num_iterations, sequence_level, world.size)
        for _ in range(cfg.num_iterations):
            for k, start in enumerate(range(0, rows, micro)):
                sl = slice(start, start + micro)
                logp, hidden = self._logps(self.policy, gens, sl, with_hidden=critic is not None)
                # μ = 1: π_old is the policy itself (ratio 1, gradient of the ratio = ∇ log π)
                old = logp.detach() if old_logp is None else old_logp[sl]
                batch = GRPOBatch(
                    logp,
                    old,
                    adv[sl],
                    mask[sl],
                    ref_logp=None if ref_logp is None else ref_logp[sl],
                    sampling_weight=self._sampling_weight(old, gens, mask, sl, k, totals),
                    num_sequences=rows * world.size,
                    num_tokens=num_tokens,
                    num_micro_batches=micro_batches * world.size,
                )
                loss, stats = self.loss(batch)
                if critic is not None and hidden is not None and returns is not None:
                    v_loss = critic.loss(hidden, returns[sl], mask[sl], num_tokens)
                    loss = loss + cfg.vf_coef * v_loss
                    totals.add_loss("value_loss", v_loss)
                if not math.isfinite(loss.item()):
                    check_finite(self.global_step, loss=loss)
                loss.backward()  # type: ignore[no-untyped-call]
                totals.add(k, loss, stats)
            self._optimiser_step(totals)
        return totals.result(world)

    def _step_tensors(
        self, gens: lm.Generations, adv: Tensor, rewards: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
        """What the μ passes share: the loss mask ``[B, L]`` (DAPO's overlong filtering applied), Â (the critic's
        GAE Â with one), ln π_old (None if μ = 1 and no critic), ln π_ref (None if β = 0), the critic's targets."""
        cfg, critic = self.config, self.critic
        mask = gens.mask.float()
        if cfg.mask_truncated_completions and gens.truncated is not None:  # DAPO's overlong filtering
            mask = mask * (~gens.truncated).to(mask.device, mask.dtype).unsqueeze(1)
        ref_logp = self.reference.logps(self.policy, lambda model: self._logps(model, gens)[0])
        old_logp = returns = None
        if cfg.num_iterations > 1 or critic is not None:  # π_old is needed past the first pass
            with torch.no_grad():
                old_logp, hidden = self._logps(self.policy, gens, with_hidden=critic is not None)
            if critic is not None and hidden is not None:
                adv, returns = critic.advantages(rewards, hidden, mask)
        return mask, adv, old_logp, ref_logp, returns

    def _optimiser_step(self, totals: StepStats) -> None:
        """One AdamW step on the micro-batches' gradients (summed over the processes, each loss being its part of
        the batch's), the global norm clipped at ``max_grad_norm``; the norm goes to ``totals``."""
        cfg = self.config
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if not cfg.fsdp:  # (FSDP summed them in the backward passes, each process keeping its shard)
            self.world.sum_gradients(params)  # each process's loss is its part of the batch's: the sum is the batch's
        limit = cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
        norm = nn.utils.clip_grad_norm_(params, limit, foreach=True)
        check_gradient(self.global_step, norm)
        totals.set("grad_norm", float(norm))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _sampling_weight(
        self, old: Tensor, gens: lm.Generations, mask: Tensor, rows: slice, k: int, totals: StepStats
    ) -> Tensor | None:
        """With ``sampling_correction``: the weight π_old/μ of micro-batch ``k`` (``rows``), and its stats added to
        ``totals`` (:func:`~proxrl.objectives.corrected_sampling_weight`: the mismatch |ln π_old − ln μ| per token,
        mean and max, the weight's mean and the share of weights the bounds changed)."""
        cfg = self.config
        if cfg.sampling_correction == "none":
            return None
        if gens.sampling_logps is None:
            raise RuntimeError("sampling_correction needs the sampler's log-probs, and the generation gave none")
        sampling_logp, m = gens.sampling_logps[rows].to(old.device), mask[rows]
        weight, stats = corrected_sampling_weight(
            old, sampling_logp, m, cfg.sampling_correction, cfg.sampling_correction_max, cfg.sampling_correction_min
        )
        gap_max = stats.pop("logp_gap_max")
        totals.add_token_means(k, {f"sampling/{key}": value for key, value in stats.items()})
        totals.max("sampling/logp_gap_max", gap_max)
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
