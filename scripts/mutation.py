#!/usr/bin/env python
"""Mutation testing of proxrl's equations: does the default test tier notice when an equation is written wrong?

Each mutation below is one small change a careless author could make to an equation (a sign, a ratio turned
upside down, γλ written as γ, min for max, an index shifted by one, a setting silently ignored), stated as the
exact snippet of source it replaces. The script copies the repository to a scratch directory (never touching the
working tree), applies one mutation at a time to the copy, runs the default test tier (``python -m pytest -x``,
pyproject's ``addopts`` deselecting the ``learning`` marker) against the copy, and reports each mutant as killed
(with the first failing test) or survived.

Why hand-written instead of mutmut or cosmic-ray: the project's issue asks for a fixed list of meaningful,
equation-level mutations described in the paper's terms, so that a survivor names a specific hole in the tests.
Generic tools generate thousands of mostly irrelevant operator mutants (in logging, error messages, config
parsing) and, at ~2 minutes per surviving mutant for this suite, would take many hours on the 2-core machine the
project is developed on. This script needs only the standard library.

Guarantees:

- every snippet must occur exactly once in its file, or the script stops before running anything (so the list
  stays in sync with the code; ``--list`` checks this, and that each mutated file still compiles, in a second);
- the copy is what is tested: pytest runs with cwd and PYTHONPATH at the copy, under a small overlay virtualenv
  whose ``.pth`` puts the copy on ``sys.path`` ahead of the project venv's editable install, so subprocesses
  that reset PYTHONPATH or change directory (``python -m proxrl.cli`` in tests/test_cli.py and
  tests/test_reliability.py) and the ``proxrl`` console script also import the mutated code. A preflight prints
  ``proxrl.__file__`` as each of those sees it and checks that a deliberately broken copy is killed;
- the test files are only reordered (the ones most likely to kill a mutation of its module first), never
  filtered: the preflight checks that the reordered run collects exactly the default tier's tests.

Usage (from the repository root, with the project's venv python; ``make mutation`` does this)::

    python scripts/mutation.py --list                      # validate every snippet, run nothing
    python scripts/mutation.py --only adv-returns-gamma-squared ppo-kl-reversed
    python scripts/mutation.py --module advantages --markdown docs/testing.md
    python scripts/mutation.py --markdown docs/testing.md  # everything (about an hour or more)

Exit status: 0 if every non-equivalent mutant run was killed, 1 if one survived (or could not be run),
2 if the set-up failed (a stale snippet, a failing baseline, a copy that is not what gets tested).
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import os
import queue
import re
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import venv
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "proxrl-mutation"
DEFAULT_TIMEOUT = 600.0
MARK_BEGIN, MARK_END = "<!-- mutation:begin -->", "<!-- mutation:end -->"


class SetupError(Exception):
    """The run cannot start or cannot be trusted (exit status 2)."""


# ------------------------------------------------------------------------------------------------ the mutations
@dataclass(frozen=True)
class Mutation:
    """One source change: ``original`` (must occur exactly once in ``file``) becomes ``replacement``.

    ``tests`` are test files to run before the module's usual ones; ``equivalent`` gives the reason a mutant is
    known to behave like the original (it is still run, but reported apart and not scored); ``ray`` adds the Ray
    tier (a one-node loopback cluster, as ``make test-ray`` runs it) to what must notice the mutant."""

    id: str
    file: str
    original: str
    replacement: str
    description: str
    tests: tuple[str, ...] = ()
    equivalent: str | None = None
    ray: bool = False  # code that runs in Ray runners: the default tier and the Ray tier (tests marked ``ray``)

    @property
    def module(self) -> str:
        """The source module's name, e.g. ``advantages`` or ``ppo``."""
        path = Path(self.file)
        return path.parent.name if path.stem == "__init__" else path.stem


ADV, OBJ, KL, DIST = "proxrl/advantages.py", "proxrl/objectives.py", "proxrl/kl.py", "proxrl/distributions.py"
FUSED, PPO, PG = "proxrl/fast/fused.py", "proxrl/algos/ppo.py", "proxrl/algos/pg.py"
OPG = "proxrl/algos/offpolicy_pg.py"
MA, GRPO = "proxrl/algos/multiagent.py", "proxrl/algos/grpo.py"
MA_BATCH, PZ_PARALLEL, PZ_AEC = "proxrl/marl/batch.py", "proxrl/marl/parallel.py", "proxrl/marl/aec.py"
LM, DEC, REF = "proxrl/lm/generation.py", "proxrl/lm/decoder.py", "proxrl/lm/reference.py"
GRPO_CONFIG = "proxrl/algos/grpo_config.py"
DIST_LM, FSDP = "proxrl/lm/distributed.py", "proxrl/lm/fsdp.py"
NORM, RUNNER = "proxrl/runners/normalizers.py", "proxrl/runners/runner.py"
POLICY, ROLLOUT = "proxrl/policies/actor_critic.py", "proxrl/rollout.py"
MA_POLICY = "proxrl/policies/multiagent_actor_critic.py"
POOL, AGENT = "proxrl/envs/envpool_vec.py", "proxrl/algos/agent.py"
VNORM, ENC, ATARI = "proxrl/marl/value_norm.py", "proxrl/policies/encoders.py", "proxrl/envs/atari.py"
REWARDS, GROUP, RAY_GROUP = "proxrl/lm/rewards.py", "proxrl/runners/group.py", "proxrl/runners/ray_group.py"

MUTATIONS: list[Mutation] = [
    # --- advantages.py: TD residual, GAE, reward-to-go, normalisation -------------------------------------
    Mutation(
        "adv-td-terminated-dropped",
        ADV,
        "gamma * (1.0 - terminated.float()) * next_values",
        "gamma * next_values",
        "δ_t = r_t + γ V(s_{t+1}) − V(s_t) without (1 − terminated_t): bootstraps past a termination",
    ),
    Mutation(
        "adv-gae-cut-only-at-termination",
        ADV,
        "carry = gamma * gae_lambda * (1.0 - (terminated | truncated).float())",
        "carry = gamma * gae_lambda * (1.0 - terminated.float())",
        "GAE recursion cut by terminated instead of done = terminated ∨ truncated: Â leaks across a truncation",
    ),
    Mutation(
        "adv-gae-carry-gamma-not-gamma-lambda",
        ADV,
        "carry = gamma * gae_lambda * (",
        "carry = gamma * (",
        "GAE: Â_t = δ_t + γ Â_{t+1} (γ instead of γλ)",
    ),
    Mutation(
        "adv-gae-carry-index-shift",
        ADV,
        "last = delta[t] + carry[t] * last",
        "last = delta[t] + carry[t - 1] * last",
        "GAE: Â_t = δ_t + γλ (1 − done_{t−1}) Â_{t+1} (done flag of the wrong step)",
    ),
    Mutation(
        "adv-returns-gamma-squared",
        ADV,
        "running = rewards[t] + gamma * tail",
        "running = rewards[t] + gamma * gamma * tail",
        "discounted_returns: G_t = r_t + γ² G_{t+1} (γ² per step instead of γ)",
    ),
    Mutation(
        "adv-returns-not-cut-at-episode-end",
        ADV,
        "tail = running * (1.0 - done[t])",
        "tail = running",
        "discounted_returns: G_t sums rewards of the next episode (no cut at done)",
    ),
    Mutation(
        "adv-returns-bootstrap-when-terminated",
        ADV,
        "bootstrap = (truncated & ~terminated).float()",
        "bootstrap = truncated.float()",
        "discounted_returns: a step both terminated and truncated is bootstrapped with γ V(s_{t+1})",
    ),
    Mutation(
        "adv-returns-final-done-mask-dropped",
        ADV,
        "else next_values[-1] * (1.0 - done[-1])",
        "else next_values[-1]",
        "discounted_returns: the rollout-end bootstrap V(s_T) is not masked by (1 − done_{T−1})",
        equivalent="the loop's first step multiplies the running value by (1 − done_{T−1}) again",
    ),
    Mutation(
        "adv-normalize-var-not-std",
        ADV,
        "return (x - x.mean()) / (x.std() + eps)",
        "return (x - x.mean()) / (x.var() + eps)",
        "normalize: (x − mean) / (var + eps) instead of / (std + eps)",
    ),
    # V-trace
    Mutation(
        "vtrace-rho-bar-c-bar-swapped",
        ADV,
        "rho, c = ratio.clamp(max=rho_bar), ratio.clamp(max=c_bar)",
        "rho, c = ratio.clamp(max=c_bar), ratio.clamp(max=rho_bar)",
        "V-trace: ρ_t truncated at c̄ and c_t at ρ̄ (ρ̄ and c̄ swapped)",
    ),
    Mutation(
        "vtrace-delta-not-weighted-by-rho",
        ADV,
        "delta = rho * (rewards",
        "delta = (rewards",
        "V-trace: δ_t = r_t + γ V(s_{t+1}) − V(s_t) without the weight ρ_t",
    ),
    Mutation(
        "vtrace-trace-not-cut-by-c",
        ADV,
        "acc = delta[t] + gamma * c[t] * carry[t] * acc",
        "acc = delta[t] + gamma * carry[t] * acc",
        "V-trace: v_t = V(s_t) + δ_t + γ (v_{t+1} − V(s_{t+1})) without the trace coefficient c_t",
    ),
    Mutation(
        "vtrace-q-uses-reset-state",
        ADV,
        "v_next = torch.where(carry.bool(), v_next, next_values)",
        "v_next = torch.where(carry.bool(), v_next, v_next)",
        "V-trace: Q̂ = r_t + γ v_{t+1} at an episode end uses v of the reset state, not V(final obs)",
    ),
    # GAE with a mask (multi-agent rows where an agent did not act)
    Mutation(
        "mgae-skipped-rows-get-advantage",
        ADV,
        "adv[t] = torch.where(mask[t], step, zero)",
        "adv[t] = step",
        "gae with a mask: rows where the column did not act get Â ≠ 0",
    ),
    Mutation(
        "mgae-skipped-rows-break-the-trace",
        ADV,
        "last = torch.where(mask[t], step, last)",
        "last = step",
        "gae with a mask: Â_next is read from the skipped row, not the column's next alive row",
    ),
    # GRPO's group-relative advantage
    Mutation(
        "gr-mean-over-prompts",
        ADV,
        "rewards - rewards.mean(dim=1, keepdim=True)",
        "rewards - rewards.mean(dim=0, keepdim=True)",
        "group_relative: r_i − mean taken over the prompts (dim 0) instead of within the group",
    ),
    # --- objectives.py: J^CLIP, GRPO loss, aggregation, value loss, entropy, PG, importance weight ----------
    Mutation(
        "obj-clip-min-to-max",
        OBJ,
        "return torch.minimum(ratio * adv, ratio.clamp(",
        "return torch.maximum(ratio * adv, ratio.clamp(",
        "J^CLIP: max(ρÂ, clip(ρ)Â) instead of min (the pessimistic bound turned optimistic)",
    ),
    Mutation(
        "obj-clip-eps-low-high-swapped",
        OBJ,
        "ratio.clamp(1.0 - clip_low, 1.0 + clip_high)",
        "ratio.clamp(1.0 - clip_high, 1.0 + clip_low)",
        "clip range [1 − ε_high, 1 + ε_low] (ε_low and ε_high swapped; PPO's symmetric clip can't see it)",
    ),
    Mutation(
        "obj-clip-lower-bound-one-plus-eps",
        OBJ,
        "ratio.clamp(1.0 - clip_low, 1.0 + clip_high)",
        "ratio.clamp(1.0 + clip_low, 1.0 + clip_high)",
        "clip range [1 + ε, 1 + ε] (1 − ε written 1 + ε)",
    ),
    Mutation(
        "obj-clip-ratio-inverted",
        OBJ,
        "ratio = (logp - old_logp).exp()\n    loss = -clipped_surrogate_terms",
        "ratio = (old_logp - logp).exp()\n    loss = -clipped_surrogate_terms",
        "clipped_surrogate: ρ = π_old/π_θ (ratio inverted)",
    ),
    Mutation(
        "obj-grpo-kl-sign",
        OBJ,
        "per_token = per_token + beta * kl_tokens",
        "per_token = per_token - beta * kl_tokens",
        "GRPO loss: + β D̂_KL rewarded instead of penalised",
    ),
    Mutation(
        "obj-grpo-k3-direction",
        OBJ,
        "kl_tokens = kl.k3(batch.ref_logp, logp)",
        "kl_tokens = kl.k3(logp, batch.ref_logp)",
        "GRPO loss: k3 with r = π_θ/π_ref instead of π_ref/π_θ (the estimator's direction reversed)",
    ),
    Mutation(
        "obj-loss-type-grpo-dapo-swapped",
        OBJ,
        '"grpo": (clipped, SequenceMean()),\n'
        '        "bnpo": (clipped, MicroBatchTokenMean()),\n'
        '        "dr_grpo": (clipped, ConstantNormaliser(max_len)),\n'
        '        "dapo": (clipped, TokenMean()),\n',
        '"grpo": (clipped, TokenMean()),\n'
        '        "bnpo": (clipped, MicroBatchTokenMean()),\n'
        '        "dr_grpo": (clipped, ConstantNormaliser(max_len)),\n'
        '        "dapo": (clipped, SequenceMean()),\n',
        "the loss family's reductions: grpo (mean per completion) and dapo (mean over all tokens) swapped",
    ),
    Mutation(
        "obj-bnpo-ignores-micro-batches",
        OBJ,
        "/ mask.sum().clamp(min=1.0) / batch.num_micro_batches",
        "/ mask.sum().clamp(min=1.0)",
        "bnpo's reduction: each micro-batch's mean not divided by the number of micro-batches",
    ),
    Mutation(
        "obj-gspo-ratio-not-length-normalised",
        OBJ,
        "return (log_ratio * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)",
        "return (log_ratio * m).sum(-1, keepdim=True)",
        "GSPO: the sequence ratio is the product of the token ratios, not its |o_i|-th root",
    ),
    Mutation(
        "obj-cispo-weight-not-detached",
        OBJ,
        "return -(ratio.clamp(max=self.clip_max).detach() * batch.adv * batch.logp)",
        "return -(ratio.clamp(max=self.clip_max) * batch.adv * batch.logp)",
        "CISPO: the clipped importance weight carries a gradient (it must be held constant)",
    ),
    Mutation(
        "obj-sapo-temperatures-swapped",
        OBJ,
        "tau = torch.where(adv > 0, self.tau_pos, self.tau_neg)",
        "tau = torch.where(adv > 0, self.tau_neg, self.tau_pos)",
        "SAPO: τ_neg used where Â > 0 and τ_pos elsewhere",
    ),
    Mutation(
        "obj-sapo-gate-not-rescaled",
        OBJ,
        "torch.sigmoid(tau * (ratio - 1.0)) * 4.0 / tau * adv",
        "torch.sigmoid(tau * (ratio - 1.0)) * adv",
        "SAPO: the gate σ(τ(ρ − 1)) without its factor 4/τ (the gradient at ρ = 1 no longer the policy gradient's)",
    ),
    Mutation(
        "obj-luspo-mean-per-completion",
        OBJ,
        "return (values * mask).sum() / batch.sequences",
        "return ((values * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / batch.sequences",
        "LUSPO: each completion's tokens averaged instead of summed (grpo's reduction: no length factor)",
    ),
    Mutation(
        "obj-vespo-mean-log-ratio",
        OBJ,
        "log_w = (log_ratio.clamp(-20.0, 20.0) * m).sum(-1, keepdim=True)",
        "log_w = (log_ratio.clamp(-20.0, 20.0) * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)",
        "VESPO: the completion's ratio from the mean of its log-ratios (GSPO's) instead of their sum",
    ),
    Mutation(
        "obj-vespo-shapes-swapped",
        OBJ,
        "positive = adv >= 0",
        "positive = adv < 0",
        "VESPO: the Gamma weight's (k, λ) of positive advantages used for negative ones and the other way",
    ),
    Mutation(
        "obj-vespo-correction-applied-twice",
        OBJ,
        "folds_sampling_weight: ClassVar[bool] = True",
        "folds_sampling_weight: ClassVar[bool] = False",
        "VESPO: the sampler's correction multiplies the loss again after being folded into the ratio w",
    ),
    Mutation(
        "obj-tis-ratio-inverted",
        OBJ,
        "log_w = (old_logp.detach() - sampling_logp) * mask",
        "log_w = (sampling_logp - old_logp.detach()) * mask",
        "sampling correction: the weight μ/π_old instead of π_old/μ",
    ),
    Mutation(
        "obj-tis-sequence-mean",
        OBJ,
        "log_w = log_w.sum(-1, keepdim=True)",
        "log_w = log_w.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)",
        "sequence correction: the geometric mean of the token weights instead of their product",
    ),
    Mutation(
        "obj-tis-not-truncated",
        OBJ,
        "else w.clamp(min=c_min, max=c_max)",
        "else w",
        "TIS: the weight π_old/μ not truncated at C_max",
    ),
    Mutation(
        "obj-tis-weights-kl-too",
        OBJ,
        "per_token = per_token + beta * kl_tokens",
        "per_token = (per_token + beta * kl_tokens) * (1.0 if batch.sampling_weight is None else "
        "batch.sampling_weight)",
        "sampling correction: the KL term weighted by π_old/μ too (TRL weights the surrogate only)",
    ),
    Mutation(
        "lm-sampling-logps-before-nucleus",
        DEC,
        "logps[:, step] = nucleus.log_softmax(-1)",
        "logps[:, step] = (logits / temperature).log_softmax(-1)",
        "the lean decoder's sampling log-prob read from softmax(logits/T) before the top-p nucleus",
    ),
    Mutation(
        "obj-agg-constant-ignores-max-len",
        OBJ,
        "(batch.sequences * (values.shape[-1] if self.max_len is None else self.max_len))",
        "(batch.sequences * values.shape[-1])",
        "dr_grpo's reduction: Σ / (B · padded length) instead of Σ / (B · max_new_tokens)",
    ),
    Mutation(
        "obj-value-loss-half-removed",
        OBJ,
        "loss = 0.5 * err.mean()",
        "loss = err.mean()",
        "value loss E[(V − R̂)²] without the factor ½",
    ),
    Mutation(
        "obj-value-clip-min",
        OBJ,
        "err = torch.maximum(err, (clipped - returns) ** 2)",
        "err = torch.minimum(err, (clipped - returns) ** 2)",
        "clipped value loss: min of the two errors instead of max",
    ),
    Mutation(
        "obj-entropy-sign",
        OBJ,
        'return -mean, {"entropy": mean.detach()}',
        'return mean, {"entropy": mean.detach()}',
        "entropy bonus returned as +H (the loss penalises exploration)",
    ),
    Mutation(
        "obj-pg-weight-ignored",
        OBJ,
        "coef = adv if weight is None else weight * adv",
        "coef = adv",
        "pg_loss: the importance weight π/β is dropped from E_β[π/β Â ∇ln π]",
    ),
    Mutation(
        "obj-importance-weight-inverted",
        OBJ,
        "(logp.detach() - behaviour_logp).exp()",
        "(behaviour_logp - logp.detach()).exp()",
        "importance weight β/π instead of π/β",
    ),
    # --- kl.py --------------------------------------------------------------------------------------------------
    Mutation(
        "kl-k3-plus-log-ratio",
        KL,
        "(torch.expm1(log_ratio) - log_ratio)",
        "(torch.expm1(log_ratio) + log_ratio)",
        "k3 = (r − 1) + log r instead of (r − 1) − log r",
    ),
    Mutation(
        "kl-k3-ratio-inverted",
        KL,
        "log_ratio = logp - old_logp",
        "log_ratio = old_logp - logp",
        "k3 with r = π_old/π instead of π/π_old",
    ),
    Mutation(
        "kl-k3-clamp-removed",
        KL,
        "- log_ratio).clamp(min=0.0)",
        "- log_ratio)",
        "k3 not clamped at 0",
        equivalent="expm1(x) − x ≥ 0 for every x; the clamp only removes rounding below zero",
    ),
    Mutation(
        "kl-adaptive-threshold-2",
        KL,
        "if measured_kl > 1.5 * self.target:",
        "if measured_kl > 2.0 * self.target:",
        "adaptive KL: c doubles above 2 d_targ instead of 1.5 d_targ",
    ),
    Mutation(
        "kl-adaptive-double-halve-swapped",
        KL,
        "self.coef *= 2.0\n        elif measured_kl < self.target / 1.5:\n            self.coef /= 2.0",
        "self.coef /= 2.0\n        elif measured_kl < self.target / 1.5:\n            self.coef *= 2.0",
        "adaptive KL: c halved when d > 1.5 d_targ and doubled when d < d_targ/1.5",
    ),
    # --- distributions.py: log_prob, entropy and KL of each head ---------------------------------------------
    Mutation(
        "dist-categorical-unnormalised",
        DIST,
        "self.logits = torch.log_softmax(self.logits, dim=-1)",
        "self.logits = self.logits",
        "Categorical: log π(a|s) = z_a, the raw logit, instead of log softmax(z)_a",
    ),
    Mutation(
        "dist-categorical-entropy-sign",
        DIST,
        "return -(self.logits.exp() * self.logits).sum(-1)",
        "return (self.logits.exp() * self.logits).sum(-1)",
        "Categorical: H = Σ_a π log π (sign of the entropy flipped)",
    ),
    Mutation(
        "dist-categorical-kl-direction",
        DIST,
        "(self.logits - other.logits)).sum(-1)",
        "(other.logits - self.logits)).sum(-1)",
        "Categorical: D_KL(p ‖ q) = Σ p (log q − log p) (log-ratio reversed)",
    ),
    Mutation(
        "dist-gaussian-logprob-no-log-std",
        DIST,
        "(-0.5 * z * z - self.log_std - _LOG_SQRT_2PI)",
        "(-0.5 * z * z - _LOG_SQRT_2PI)",
        "DiagGaussian: log π without the − log σ term",
    ),
    Mutation(
        "dist-gaussian-z-times-sigma",
        DIST,
        "z = (actions - self.mean) * (-self.log_std).exp()",
        "z = (actions - self.mean) * self.log_std.exp()",
        "DiagGaussian: z = (a − μ) σ instead of (a − μ)/σ",
    ),
    Mutation(
        "dist-gaussian-kl-var-p",
        DIST,
        "/ (2 * var_q)",
        "/ (2 * var_p)",
        "DiagGaussian: D_KL(p ‖ q) divides by 2σ_p² instead of 2σ_q²",
    ),
    Mutation(
        "dist-multicategorical-first-subaction",
        DIST,
        "p.log_prob(actions[..., i])",
        "p.log_prob(actions[..., 0])",
        "MultiCategorical: every part scores sub-action 0",
    ),
    # --- gSDE: the variance of ε = φ·θ_ε, its log σ, the detached features, the rollout's matrices ------------
    Mutation(
        "gsde-variance-features-not-squared",
        DIST,
        "return (features * features) @ (std * std)",
        "return features.abs() @ (std * std)",
        "gSDE: Var_j = Σ_i |φ_i| σ_ij² (φ not squared)",
        tests=("test_gsde.py",),
    ),
    Mutation(
        "gsde-variance-std-not-squared",
        DIST,
        "return (features * features) @ (std * std)",
        "return (features * features) @ std",
        "gSDE: Var_j = Σ_i φ_i² σ_ij (σ for σ²)",
        tests=("test_gsde.py",),
    ),
    Mutation(
        "gsde-log-std-is-log-var",
        DIST,
        "return DiagGaussian(mean, 0.5 * torch.log(",
        "return DiagGaussian(mean, torch.log(",
        "gSDE: log σ = log Var (the ½ of log √Var dropped)",
        tests=("test_gsde.py",),
    ),
    Mutation(
        "gsde-features-trained-by-the-variance",
        DIST,
        "phi = features if learn_features else features.detach()",
        "phi = features",
        "gSDE: φ not detached in the variance (the trunk trained by it without sde_learn_features)",
        tests=("test_gsde.py",),
    ),
    Mutation(
        "gsde-exploration-unit-std",
        DIST,
        "return log_std.exp() * torch.randn(",
        "return torch.randn(",
        "gSDE: θ_ε ~ N(0, 1) instead of N(0, σ²)",
        tests=("test_gsde.py",),
    ),
    Mutation(
        "gsde-act-ignores-the-matrix",
        POLICY,
        "actions = dist.mean + gsde_noise(h, exploration)",
        "actions = dist.sample()",
        "gSDE acting: a fresh Gaussian draw each step instead of μ(s) + φ(s)·θ_ε",
        tests=("test_gsde.py",),
    ),
    Mutation(
        "gsde-numpy-variance-std-not-squared",
        "proxrl/fast/numpy_acting.py",
        "var = (h * h) @ np.exp(2.0 * self.log_std) + GSDE_VAR_EPS",
        "var = (h * h) @ np.exp(self.log_std) + GSDE_VAR_EPS",
        "gSDE numpy acting: log π with Var = Σ φ² σ (σ for σ²)",
        tests=("test_fast_paths.py", "test_gsde.py"),
    ),
    Mutation(
        "gsde-numpy-exploration-unit-std",
        "proxrl/fast/numpy_acting.py",
        "self.exploration = np.exp(self.log_std) * draws",
        "self.exploration = draws",
        "gSDE numpy acting: θ_ε ~ N(0, 1) instead of N(0, σ²)",
        tests=("test_gsde.py",),
    ),
    Mutation(
        "gsde-resampled-every-step",
        ROLLOUT,
        "if self.policy.use_sde and (t == 0 or (self.sde_sample_freq > 0 and t % self.sde_sample_freq == 0)):",
        "if self.policy.use_sde:",
        "gSDE rollout: θ_ε resampled at every step, not every sde_sample_freq steps",
        tests=("test_gsde.py",),
    ),
    Mutation(
        "gsde-period-ignored",
        ROLLOUT,
        "if self.policy.use_sde and (t == 0 or (self.sde_sample_freq > 0 and t % self.sde_sample_freq == 0)):",
        "if self.policy.use_sde and t == 0:",
        "gSDE rollout: θ_ε drawn once per rollout whatever sde_sample_freq says",
        tests=("test_gsde.py",),
    ),
    # --- fast/fused.py: the closed-form Clip-PPO gradient ---------------------------------------------------
    Mutation(
        "fused-dlogp-sign",
        FUSED,
        ".mul_(-1.0 / n)",
        ".mul_(1.0 / n)",
        "fused: ∂(−J^CLIP)/∂log π = +ρÂ/B (sign flipped)",
    ),
    Mutation(
        "fused-dlogp-clipped-branch",
        FUSED,
        "torch.where(unclipped <= clipped, unclipped, 0.0)",
        "torch.where(unclipped >= clipped, unclipped, 0.0)",
        "fused: the gradient flows where the clipped branch is the minimum, not the unclipped one",
    ),
    Mutation(
        "fused-categorical-grad-sign",
        FUSED,
        "d_params = (onehot - p).mul_(",
        "d_params = (p - onehot).mul_(",
        "fused: ∂log π(a)/∂z = p − onehot(a) (sign flipped)",
    ),
    Mutation(
        "fused-entropy-grad-sign",
        FUSED,
        "alpha=self.ent_coef / n)",
        "alpha=-self.ent_coef / n)",
        "fused: the entropy bonus's gradient in the logits has the wrong sign",
    ),
    Mutation(
        "fused-gaussian-mean-grad-over-sigma",
        FUSED,
        "d_params = (z * inv_std).mul_(",
        "d_params = z.clone().mul_(",
        "fused: ∂log π/∂μ = (a − μ)/σ instead of (a − μ)/σ²",
    ),
    Mutation(
        "fused-gaussian-log-std-grad-plus-one",
        FUSED,
        "torch.sub(d_logp @ (z * z), d_logp.sum()",
        "torch.add(d_logp @ (z * z), d_logp.sum()",
        "fused: ∂log π/∂log σ = z² + 1 instead of z² − 1",
    ),
    Mutation(
        "fused-value-grad-factor-two",
        FUSED,
        "d_values.mul_(self.vf_coef / n)",
        "d_values.mul_(2.0 * self.vf_coef / n)",
        "fused: ∂(½(V − R̂)²)/∂V = 2(V − R̂) (the ½ forgotten in the derivative)",
    ),
    # --- algos/ppo.py: async runners' stale-data correction ------------------------------------------------------
    Mutation(
        "ppo-async-log-rho-inverted",
        PPO,
        "            logp_prox - batch.logp,\n",
        "            batch.logp - logp_prox,\n",
        "async PPO: V-trace's ρ_t = β/π_prox instead of π_prox/β",
        tests=("test_runners.py",),
    ),
    Mutation(
        "ppo-async-advantage-unweighted",
        PPO,
        "return prox, weight * (q_hat - values), v_target",
        "return prox, q_hat - values, v_target",
        "async PPO: Â = Q̂ − V without the truncated weight min(c̄, π_prox/β)",
        tests=("test_runners.py",),
    ),
    Mutation(
        "ppo-async-truncation-bootstrap-current-critic",
        PPO,
        "next_values = torch.where(batch.truncated, batch.values[1:], torch.cat([values[1:], last[None]]))",
        "next_values = torch.cat([values[1:], last[None]])",
        "async PPO: after a truncation V(s_{t+1}) of the reset observation instead of V(final observation)",
        tests=("test_runners.py",),
    ),
    # --- runners: the normaliser merge and the acting stream's rows ------------------------------------------------
    Mutation(
        "norm-added-mean-sign",
        NORM,
        "mean_b = (n * mean - n_a * mean_a) / n_b",
        "mean_b = (n * mean + n_a * mean_a) / n_b",
        "normaliser merge: a runner's added mean with the base's mean added instead of removed",
        tests=("test_runners.py",),
    ),
    Mutation(
        "norm-added-var-cross-term-dropped",
        NORM,
        "m2_b = var * n - var_a * n_a - (mean_b - mean_a) ** 2 * n_a * n_b / n",
        "m2_b = var * n - var_a * n_a",
        "normaliser merge: a runner's added variance without Chan's between-means term",
        tests=("test_runners.py",),
    ),
    Mutation(
        "runner-draws-first-rows",
        RUNNER,
        "self.generator, self.total, self.rows = generator, total, slice(first, first + count)",
        "self.generator, self.total, self.rows = generator, total, slice(0, count)",
        "runners: every runner uses the first M rows of the shared acting draws instead of its own",
        tests=("test_runners.py",),
    ),
    # --- algos/ppo.py ------------------------------------------------------------------------------------------
    Mutation(
        "ppo-kl-reversed",
        PPO,
        "make_distribution(self.policy.action_space, old_params, old_log_std).kl(dist)",
        "dist.kl(make_distribution(self.policy.action_space, old_params, old_log_std))",
        "KL-PPO penalises D_KL(π_θ ‖ π_old) instead of D_KL(π_old ‖ π_θ)",
    ),
    Mutation(
        "ppo-adaptive-kl-on-minibatch-kl",
        PPO,
        "self.kl_coef = self.adaptive_kl.update(reached)",
        'self.kl_coef = self.adaptive_kl.update(out["kl"])',
        "adaptive KL adapts c on the mean KL of the minibatches before each step, not the KL the update reached",
    ),
    Mutation(
        "ppo-gae-values-shift",
        PPO,
        "                            batch.values[:-1],\n                            batch.next_values,",
        "                            batch.values[1:],\n                            batch.next_values,",
        "PPO: GAE with V(s_{t+1}) in place of V(s_t) (values[1:] for values[:-1])",
    ),
    Mutation(
        "lstm-replay-without-resets",
        POLICY,
        "y, state = self._core_step(x[step], state, ~starts[step])",
        "y, state = self._core_step(x[step], state, None)",
        "recurrent PPO: the update's sequence replay carries the state across episode starts",
    ),
    Mutation(
        "lstm-starts-every-valid-row",
        ROLLOUT,
        'arr["starts"][t] = arr["valid"][t] & ~self.prev_valid',
        'arr["starts"][t] = arr["valid"][t]',
        "recurrent rollout: the state is reset at every step, not where an episode starts",
    ),
    Mutation(
        "lstm-acting-keeps-the-state-at-a-start",
        ROLLOUT,
        "keep = torch.from_numpy(~starts).to(self.device)",
        "keep = torch.from_numpy(starts | ~starts).to(self.device)",
        "recurrent acting: the state is carried into a new episode",
    ),
    Mutation(
        "lstm-resume-forgets-the-state",
        AGENT,
        'rollout.state = tuple(x.to(self.device) for x in saved["recurrent_state"])',
        "rollout.state = rollout.state",
        "recurrent resume: the LSTM state of the episodes under way restarts from zeros",
    ),
    Mutation(
        "marl-stacked-frames-not-channel-first",
        MA_POLICY,
        "x = x.permute(0, 1, 4, 2, 3)",
        "x = x",
        "central critic over images: [H, W, C] frames reshaped to channels without moving the channels first",
    ),
    Mutation(
        "envpool-clipped-score",
        POOL,
        'raw = info["reward"] if self.atari else reward',
        "raw = reward",
        "EnvPool Atari: the logged episode return is the sum of clipped rewards, not the game's score",
    ),
    Mutation(
        "envpool-life-loss-ends-the-game",
        POOL,
        'game_over = (info["terminated"].astype(bool) if self.atari else terminated) | truncated',
        "game_over = terminated | truncated",
        "EnvPool Atari: an episode is logged at every lost life (episodic life) instead of at the game's end",
    ),
    Mutation(
        "envpool-reset-row-counted",
        POOL,
        "live = ~self._resetting",
        "live = self._resetting | ~self._resetting",
        "EnvPool: the NEXT_STEP reset row is counted in the episode's length",
    ),
    Mutation(
        "ppo-recurrent-seq-adv-not-normalised",
        PPO,
        "seq_adv = normalize(seq_adv)",
        "seq_adv = seq_adv",
        "recurrent PPO: sequence minibatch advantages not normalised although norm_adv is set",
    ),
    Mutation(
        "ppo-minibatch-adv-not-normalised",
        PPO,
        "mb_adv = normalize(mb_adv)",
        "mb_adv = mb_adv",
        "PPO: minibatch advantages not normalised although norm_adv is set",
    ),
    Mutation(
        "ppo-minibatch-adv-renormalised",
        PPO,
        "mb_adv = flat_adv[idx]",
        "mb_adv = whole_adv[idx]",
        "PPO: minibatches normalise the already batch-normalised advantages",
        equivalent="normalisation is affine-invariant: normalising a slice of normalised Â gives the same "
        "values up to eps",
    ),
    Mutation(
        "ppo-value-clip-ignored-autograd",
        PPO,
        "clip_eps if cfg.clip_vloss else None",
        "None",
        "PPO (autograd path): clip_vloss ignored, the value loss is never clipped",
    ),
    Mutation(
        "ppo-value-clip-ignored-fused",
        PPO,
        "returns, old_values, clip_eps, cfg.clip_vloss)",
        "returns, old_values, clip_eps, False)",
        "PPO (fused path): clip_vloss ignored, the value loss is never clipped",
    ),
    # --- algos/pg.py ---------------------------------------------------------------------------------------------
    Mutation(
        "pg-gae-critic-target-is-advantage",
        PG,
        "return adv, adv + batch.values[:-1]",
        "return adv, adv",
        "PG (gae): the critic regresses on Â instead of Â + V(s) (the λ-return)",
    ),
    Mutation(
        "pg-return-minus-value-shift",
        PG,
        "return g - batch.values[:-1], g",
        "return g - batch.values[1:], g",
        "PG (return_minus_value): Â = G_t − V(s_{t+1}) instead of G_t − V(s_t)",
    ),
    Mutation(
        "pg-return-minus-value-no-bootstrap",
        PG,
        "gamma=gamma, next_values=batch.next_values)",
        "gamma=gamma)",
        "PG (return_minus_value): G ignores V(final obs) after a truncation and at the rollout's end",
    ),
    # --- algos/offpolicy_pg.py -----------------------------------------------------------------------------------
    Mutation(
        "opg-baseline-sign",
        OPG,
        "adv = q_hat - v_detached if cfg.baseline",
        "adv = q_hat + v_detached if cfg.baseline",
        "off-policy PG: Q̂ + V(s) instead of Q̂ − V(s) (baseline added)",
    ),
    Mutation(
        "opg-weight-not-truncated",
        OPG,
        "importance_weight(logp[valid], item.logp[valid], cfg.max_weight)",
        "importance_weight(logp[valid], item.logp[valid])",
        "off-policy PG: the weight π/β is not truncated at c̄ (max_weight ignored)",
    ),
    Mutation(
        "opg-log-rho-inverted",
        OPG,
        "logp.detach() - item.logp,\n                gamma=cfg.gamma",
        "item.logp - logp.detach(),\n                gamma=cfg.gamma",
        "off-policy PG: V-trace gets log β − log π (ρ = β/π)",
    ),
    # --- algos/multiagent.py (HAPPO) and the batch's critic views (MAPPO/IPPO advantages) ------------------
    Mutation(
        "happo-m-never-updated",
        MA,
        "m = m * torch.where(_flat(b.alive)[:, i], ratio, torch.ones_like(ratio))",
        "m = m",
        "HAPPO: M ≡ 1, never multiplied by the updated agents' π_new/π_old",
    ),
    Mutation(
        "happo-m-inverse-ratio",
        MA,
        "ratio = (new_logp[:, 0] - _flat(b.logp)[:, i]).exp()",
        "ratio = (_flat(b.logp)[:, i] - new_logp[:, 0]).exp()",
        "HAPPO: M multiplied by π_old/π_new (inverse ratio)",
    ),
    Mutation(
        "happo-fixed-agent-order",
        MA,
        "order = torch.randperm(len(self.spec.names), generator=self.order_rng).tolist()",
        "order = list(range(len(self.spec.names)))",
        "HAPPO: agents updated in the fixed order 0..n−1 instead of a fresh random permutation",
    ),
    Mutation(
        "happo-m-normalised-away",
        MA,
        "mb_adv = mb_adv * weight[idx][:, None].expand_as(alive)[alive]",
        "mb_adv = normalize(mb_adv * weight[idx][:, None].expand_as(alive)[alive])",
        "HAPPO: M Â re-normalised after the weighting (M's scale normalised away)",
    ),
    Mutation(
        "mappo-team-bootstrap-ignored",
        MA_BATCH,
        "self.team_next_values,\n            self.team_terminated",
        "torch.zeros_like(self.team_next_values),\n            self.team_terminated",
        "MAPPO: joint GAE with V(s_{t+1}) = 0 (no bootstrap from the next state or V(final state))",
    ),
    Mutation(
        "ippo-bootstrap-ignored",
        MA_BATCH,
        "self.values, self.next_values, self.terminated",
        "self.values, torch.zeros_like(self.next_values), self.terminated",
        "IPPO: per-agent GAE with V_i(s_{t+1}) = 0 (no bootstrap)",
    ),
    # --- marl/batch.py and marl/parallel.py: the collector's team quantities ------------------------------------
    Mutation(
        "mappo-team-reward-agent0",
        MA_BATCH,
        "team_rewards=tt(self.rewards.sum(-1))",
        "team_rewards=tt(self.rewards[..., 0])",
        "MAPPO: team reward is agent 0's r_0 instead of Σ_i r_i",
    ),
    Mutation(
        "mappo-collector-team-bootstrap-zero",
        PZ_PARALLEL,
        "b.team_bootstrap[t] = np.where(b.team_truncated[t], v_final[:, 0], 0.0)",
        "b.team_bootstrap[t] = 0.0",
        "MAPPO collector: V(final state) of a truncated episode never recorded",
    ),
    Mutation(
        "ma-next-value-from-skipped-row",
        MA_BATCH,
        "upcoming = np.where(alive[t], values[t], upcoming)",
        "upcoming = values[t]",
        "collector: V(s_{t+1}) is V of the next row even where the column did not act (alive ignored)",
    ),
    Mutation(
        "ma-truncation-bootstrap-ignored",
        MA_BATCH,
        "out[t] = np.where(truncated[t], bootstrap[t], upcoming)",
        "out[t] = upcoming",
        "collector: after a truncation V(s_{t+1}) is the next episode's V, not V(final observation)",
    ),
    Mutation(
        "mappo-team-terminated-any-agent",
        PZ_PARALLEL,
        "bool(b.terminated[t, i][b.alive[t, i]].all())",
        "bool(b.terminated[t, i][b.alive[t, i]].any())",
        "MAPPO collector: the episode counts as terminated when any agent terminated (not every agent)",
    ),
    # --- algos/grpo.py ------------------------------------------------------------------------------------------
    Mutation(
        "grpo-groups-transposed",
        GRPO,
        "grouped = rewards.view(-1, cfg.group_size)",
        "grouped = rewards.view(cfg.group_size, -1).T",
        "GRPO: rewards grouped transposed, so each group mixes completions of different prompts",
    ),
    Mutation(
        "grpo-reference-is-policy",
        REF,
        "                out = logps(self.model)",
        "                out = logps(policy)",
        "GRPO: reference log-probs taken from the policy π_θ instead of π_ref",
    ),
    Mutation(
        "grpo-old-logp-recomputed-every-pass",
        GRPO,
        "old = logp.detach() if old_logp is None else old_logp[sl]",
        "old = logp.detach()",
        "GRPO: π_old recomputed on every pass (ratio ≡ 1 and no clipping when μ > 1)",
    ),
    Mutation(
        "grpo-eps-high-ignored",
        GRPO_CONFIG,
        "clip_high=self.clip_eps_high if self.clip_eps_high is not None else self.clip_eps,",
        "clip_high=self.clip_eps,",
        "GRPO: ε_high ignored (clip range [1 − ε_low, 1 + ε_low])",
    ),
    Mutation(
        "grpo-temperature-not-in-logps",
        GRPO,
        "temperature = self.config.temperature  #",
        "temperature = 1.0  #",
        "GRPO: log-probs at temperature 1 although completions were sampled at T",
    ),
    Mutation(
        "grpo-loss-type-ignored",
        GRPO_CONFIG,
        "make_grpo_loss(\n            self.loss_type,",
        'make_grpo_loss(\n            "grpo",',
        "GRPO: the loss_type setting ignored (always the per-sequence mean)",
    ),
    Mutation(
        "grpo-importance-level-ignored",
        GRPO_CONFIG,
        "importance_sampling_level=self.importance_sampling_level,",
        'importance_sampling_level="token",',
        "GRPO: importance_sampling_level ignored (always per-token ratios)",
    ),
    Mutation(
        "grpo-micro-batch-count-not-passed",
        GRPO,
        "num_micro_batches=micro_batches * world.size,",
        "num_micro_batches=1,",
        "GRPO: bnpo's micro-batch means summed instead of averaged over grad_accum_steps",
    ),
    Mutation(
        "grpo-accumulation-divides-by-microbatch",
        GRPO,
        "num_sequences=rows * world.size,\n                    num_tokens=num_tokens,",
        "num_sequences=micro * world.size,\n                    num_tokens=num_tokens,",
        "GRPO: with grad_accum_steps > 1 each micro-batch divides by its own size (gradient × accum steps)",
    ),
    Mutation(
        "grpo-step-keeps-a-stale-gradient",
        GRPO,
        "        self.optimizer.zero_grad(set_to_none=True)\n        num_tokens = world.all_sum(",
        "        num_tokens = world.all_sum(",
        "GRPO: a step adds to a gradient left on the weights (the warm-up's last) instead of starting from none",
    ),
    Mutation(
        "dp-gradients-averaged",
        DIST_LM,
        "                work.wait()\n",
        "                work.wait()\n            for p in params:\n"
        "                p.grad.div_(self.size)  # type: ignore[union-attr]\n",
        "data-parallel GRPO: gradients averaged over the processes instead of summed (each loss is already its "
        "share of the batch's)",
        tests=("test_grpo_distributed.py",),
    ),
    Mutation(
        "fsdp-gradients-averaged",
        FSDP,
        "        unit.set_gradient_divide_factor(1.0)  # a sum",
        "        pass  # FSDP's default: the mean",
        "sharded GRPO: the reduce-scatter averages the gradients over the processes instead of summing them",
        tests=("test_grpo_distributed.py",),
    ),
    Mutation(
        "dp-sequences-counted-per-process",
        GRPO,
        "num_sequences=rows * world.size,",
        "num_sequences=rows,",
        "data-parallel GRPO: grpo/dr_grpo divide by this process's completions instead of the batch's",
        tests=("test_grpo_distributed.py",),
    ),
    Mutation(
        "dp-micro-batches-counted-per-process",
        GRPO,
        "num_micro_batches=micro_batches * world.size,",
        "num_micro_batches=micro_batches,",
        "data-parallel GRPO: bnpo divides by this process's micro-batch count instead of the batch's",
        tests=("test_grpo_distributed.py",),
    ),
    Mutation(
        "dp-tokens-counted-per-process",
        GRPO,
        'num_tokens = world.all_sum(mask.sum(), "the token count").clamp(min=1.0)',
        "num_tokens = mask.sum().clamp(min=1.0)",
        "data-parallel GRPO: dapo divides by this process's tokens instead of the batch's (not all-reduced)",
        tests=("test_grpo_distributed.py",),
    ),
    Mutation(
        "dp-advantages-from-own-rows-shifted",
        GRPO,
        "adv = group_relative(grouped, cfg.scale_rewards).reshape(-1, 1)[world.shard(rewards.numel())]",
        "adv = group_relative(grouped, cfg.scale_rewards).reshape(-1, 1)[: rewards.numel() // world.size]",
        "data-parallel GRPO: every process takes rank 0's advantages instead of its own rows'",
        tests=("test_grpo_distributed.py",),
    ),
    Mutation(
        "dp-sampling-draws-rank-0-rows",
        DEC,
        "u = torch.rand(total, 1, dtype=cdf.dtype, device=cdf.device)[offset : offset + cdf.shape[0]] * cdf[:, -1:]",
        "u = torch.rand(total, 1, dtype=cdf.dtype, device=cdf.device)[: cdf.shape[0]] * cdf[:, -1:]",
        "data-parallel sampling: every process uses the uniforms of rank 0's rows, not of its own",
        tests=("test_grpo_distributed.py",),
    ),
    Mutation(
        "obj-clip-frac-ignores-adv-sign",
        OBJ,
        "low = ((ratio < 1.0 - clip_low) & (adv < 0))",
        "low = (ratio < 1.0 - clip_low)",
        "clip_frac counts ρ < 1 − ε as clipped whatever Â's sign (where the min keeps the unclipped term)",
    ),
    Mutation(
        "pz-aec-game-end-unmarked",
        PZ_AEC,
        "        b.team_terminated[row, i] = True\n        return",
        "        return",
        "turn-based collector: a terminated game sets no team episode end (joint GAE runs across games)",
    ),
    # --- lm/ and lm/decoder.py ------------------------------------------------------------------------------
    Mutation(
        "lm-logps-temperature-multiplied",
        LM,
        "logits = logits / temperature",
        "logits = logits * temperature",
        "token_logps: logits × T instead of / T (log-probs of the policy at 1/T)",
    ),
    Mutation(
        "lm-mask-drops-eos",
        LM,
        "[None] <= first[:, None]",
        "[None] < first[:, None]",
        "completion_mask: the end token itself is not part of the completion (its log-prob never trained)",
    ),
    Mutation(
        "decoder-hidden-shift",
        DEC,
        "fused=fused)[0][:, prompt_len - 1 : -1]",
        "fused=fused)[0][:, prompt_len:]",
        "lean decoder: completion token t scored from the hidden state at t instead of t − 1",
    ),
    # --- marl/value_norm.py: MAPPO's running statistics of the critic's targets (issue 35) ---------------------
    Mutation(
        "vnorm-merge-cross-term-n-dropped",
        VNORM,
        "delta**2 * self.count * n / total",
        "delta**2 * self.count / total",
        "value_norm: the merged variance's cross term δ² n_a n_b / n without n_b",
    ),
    Mutation(
        "vnorm-mean-step-unweighted",
        VNORM,
        "self.mean += delta * n / total",
        "self.mean += delta",
        "value_norm: the running mean jumps to the batch's mean (δ instead of δ n_b / n)",
    ),
    Mutation(
        "vnorm-normalize-mean-kept",
        VNORM,
        "(x - self.mean) / math.sqrt(",
        "x / math.sqrt(",
        "value_norm: targets divided by the std without the mean subtracted",
    ),
    Mutation(
        "vnorm-denormalize-mean-dropped",
        VNORM,
        "return x * math.sqrt(self.var + 1e-8) + self.mean if",
        "return x * math.sqrt(self.var + 1e-8) if",
        "value_norm: V denormalised as x·std, the mean forgotten (GAE on values off by the mean)",
    ),
    # --- marl/aec.py and marl/parallel.py: reward credit in turn-based and parallel games (issue 35) -------------
    Mutation(
        "aec-credit-counted-twice",
        PZ_AEC,
        "gained = float(reward) - c._credited[i, k]",
        "gained = float(reward)",
        "turn-based credit: a reward credited at a rollout's end counted again at the player's next turn",
    ),
    Mutation(
        "aec-open-move-not-held",
        PZ_AEC,
        "                    _hold(c, i, k, row)\n",
        "",
        "turn-based credit: a move still awaiting its reward stays in its rollout (a later −1 lands on no row)",
    ),
    Mutation(
        "aec-held-move-not-credited",
        PZ_AEC,
        "c._last_row[i, k] = c._last_move[i] = row",
        "c._last_move[i] = row",
        "turn-based credit: a held move opens the next rollout but its reward is credited to no row",
    ),
    Mutation(
        "aec-held-moves-out-of-order",
        PZ_AEC,
        'np.argsort(c._held_row[i], kind="stable")',
        'np.argsort(-c._held_row[i], kind="stable")',
        "turn-based credit: held moves open the next rollout latest first (the rows' time order broken)",
    ),
    Mutation(
        "aec-boundary-bootstraps-from-now",
        PZ_AEC,
        "                    v[k] = b.values[row, i, k]\n",
        "",
        "turn-based: the rollout a move was held from bootstraps from V now, not V at the held move",
    ),
    Mutation(
        "parallel-episode-return-last-reward",
        PZ_PARALLEL,
        "c._ep_return[i, k] += b.rewards[t, i, k]",
        "c._ep_return[i, k] = b.rewards[t, i, k]",
        "parallel collector: the logged episode return is the last step's reward, not the sum",
    ),
    Mutation(
        "parallel-dead-agents-alive",
        PZ_PARALLEL,
        "b.alive[t, i, [c.index[a] for a in c._obs[i]]] = True",
        "b.alive[t, i] = True",
        "parallel collector: an agent that left the episode still counts as acting (its rows in GAE and losses)",
    ),
    # --- lm/rewards.py: GRPO's weighted sum of reward functions (issue 35) ---------------------------------------
    Mutation(
        "grpo-reward-weights-ignored",
        REWARDS,
        "total += torch.nan_to_num(weight * component, nan=0.0)",
        "total += torch.nan_to_num(component, nan=0.0)",
        "GRPO reward: Σ_k r_k instead of Σ_k w_k r_k (reward_weights ignored)",
    ),
    Mutation(
        "grpo-bias-corrected-kl-ratio-detached",
        OBJ,
        "kl_tokens = kl_tokens * ratio",
        "kl_tokens = kl_tokens * ratio.detach()",
        "use_bias_correction_kl: β k3 sg(ρ) instead of β k3 ρ (TRL's ρ carries gradient; on-policy β k3 is lost)",
    ),
    Mutation(
        "grpo-nan-sampler-logp-kept",
        OBJ,
        "    log_w = torch.nan_to_num(log_w, nan=0.0)\n",
        "",
        "sampling correction: a NaN sampler log-prob makes the token's weight NaN (TRL: weight 1)",
    ),
    # --- runners/group.py: what the learner keeps of the runners' fragments, and how it merges them (issue 35) ----
    Mutation(
        "runners-staleness-boundary-dropped",
        GROUP,
        "return staleness if staleness <= max_staleness else None",
        "return staleness if staleness < max_staleness else None",
        "async runners: a fragment exactly max_staleness updates old is dropped (K-stale data is to be kept)",
        ray=True,
    ),
    Mutation(
        "runners-fragments-in-arrival-order",
        GROUP,
        "fragments = sorted(self._sample(self.weights(), sync), key=lambda f: f.index)",
        "fragments = list(reversed(self._sample(self.weights(), sync)))",
        "runner group: fragments side by side in the order they arrived, not by runner (env columns shuffled)",
        ray=True,
    ),
    Mutation(
        "runners-episodes-by-local-env-index",
        GROUP,
        "ended.append((row, frag.index * m + env, ret, length))",
        "ended.append((row, env, ret, length))",
        "runner group: a finished episode listed by its runner-local env index (the logged order of episodes)",
        ray=True,
    ),
    Mutation(
        "runners-steps-of-one-runner",
        GROUP,
        "self.steps_taken = sum(frag.steps_taken for frag in fragments)",
        "self.steps_taken = fragments[0].steps_taken",
        "runner group: the iteration counts one runner's env steps, not every runner's",
        ray=True,
    ),
    Mutation(
        "ray-async-staleness-unfiltered",
        RAY_GROUP,
        "                        self._keep_if_fresh(fragment, sync.version, kept)\n",
        "                        kept.append(fragment)\n",
        "async Ray runners: every fragment trained on, however many updates old its weights",
        ray=True,
    ),
    # --- policies/encoders.py and envs/atari.py: what the networks see and the rewards Atari pays -------------
    Mutation(
        "cnn-uint8-not-scaled",
        ENC,
        "self.scale = 1 / 255 if space.dtype == np.uint8 else 1.0",
        "self.scale = 1.0",
        "Nature CNN: uint8 frames fed as 0–255 instead of scaled by 1/255",
    ),
    Mutation(
        "atari-rewards-not-clipped",
        ATARI,
        "lambda r: float(np.sign(float(r)))",
        "lambda r: float(r)",
        "Atari training: rewards not clipped to their sign",
    ),
    Mutation(
        "atari-life-loss-not-an-end",
        ATARI,
        "        if 0 < lives < self.lives:\n            terminated = True",
        "        if 0 < lives < self.lives:\n            pass",
        "Atari training: a lost life does not end the training episode (no episodic life)",
    ),
]

# Test files most likely to kill a mutation of each module, run first (file-name patterns, in order; then any
# file named after the module, e.g. a new test_grpo_*.py; then the rest of tests/).
MODULE_TESTS: dict[str, tuple[str, ...]] = {
    "advantages": (
        "test_advantages.py",
        "test_group_relative.py",
        "test_multiagent.py",
        "test_offpolicy_pg.py",
        "test_pg.py",
        "test_ppo_equations.py",
        "test_multiagent_equations.py",
        "test_theory.py",
    ),
    "objectives": (
        "test_objectives.py",
        "test_grpo_loss_family.py",
        "test_grpo.py",
        "test_fast_paths.py",
        "test_ppo_equations.py",
        "test_grpo_equations.py",
        "test_pg.py",
        "test_theory.py",
    ),
    "kl": ("test_objectives.py", "test_grpo.py", "test_ppo_equations.py", "test_grpo_equations.py", "test_ppo.py"),
    "distributions": ("test_distributions.py", "test_fast_paths.py", "test_ppo_equations.py"),
    "fused": ("test_fast_paths.py", "test_ppo_equations.py", "test_ppo.py"),
    "ppo": ("test_ppo_equations.py", "test_ppo*.py", "test_fast_paths.py", "test_pg.py"),
    "pg": ("test_pg*.py", "test_advantages.py", "test_theory.py"),
    "offpolicy_pg": ("test_offpolicy_pg*.py", "test_theory.py"),
    "multiagent": ("test_multiagent_equations.py", "test_multiagent*.py", "test_resume.py"),
    "batch": ("test_multiagent_equations.py", "test_multiagent*.py", "test_aec_credit.py"),
    "parallel": ("test_aec_credit.py", "test_multiagent_equations.py", "test_multiagent*.py", "test_resume.py"),
    "aec": ("test_aec_credit.py", "test_multiagent_equations.py", "test_multiagent*.py", "test_resume.py"),
    "grpo": ("test_grpo_equations.py", "test_grpo*.py", "test_group_relative.py"),
    "grpo_config": ("test_grpo_loss_family.py", "test_grpo_equations.py", "test_grpo*.py"),
    "reference": ("test_grpo_equations.py", "test_grpo.py", "test_resume.py"),
    "generation": ("test_grpo.py", "test_grpo_equations.py", "test_decoder.py"),
    "decoder": ("test_decoder*.py", "test_grpo.py", "test_grpo_equations.py"),
    "normalizers": ("test_runners.py",),
    "value_norm": ("test_multiagent_equations.py", "test_multiagent.py"),
    "encoders": ("test_encoders.py", "test_marl_pixels.py", "test_atari.py"),
    "actor_critic": ("test_recurrent.py", "test_ppo.py"),
    "multiagent_actor_critic": ("test_marl_pixels.py", "test_multiagent.py"),
    "atari": ("test_atari.py",),
    "rewards": ("test_grpo_trl_loss.py", "test_grpo*.py"),
    "runner": ("test_runners.py", "test_fast_paths.py"),
    "group": ("test_runners.py", "test_ray.py", "test_aec_credit.py"),
    "ray_group": ("test_ray.py",),
}
# What a mutation in Ray code must be noticed by: the default tier's selection plus the tests marked ``ray``.
RAY_AND_DEFAULT = "ray or (not learning and not docs and not slow)"
# Slow files go last in the fallback order (a kill there costs the most).
SLOW_TESTS = ("test_decoder.py", "test_grpo.py", "test_resume.py", "test_cli.py", "test_reliability.py")


# ------------------------------------------------------------------------------------------------ validation
def validate(mutation: Mutation, text: str) -> str | None:
    """Why ``mutation`` cannot be applied to ``text`` (its file's source), or None if it can."""
    count = text.count(mutation.original)
    if count != 1:
        return f"snippet occurs {count} times in {mutation.file} (must be exactly once): {mutation.original!r}"
    if mutation.original == mutation.replacement:
        return "replacement equals the original"
    try:
        compile(apply(mutation, text), mutation.file, "exec")
    except SyntaxError as e:
        return f"mutated {mutation.file} does not compile: {e}"
    return None


def apply(mutation: Mutation, text: str) -> str:
    """``text`` with the mutation's snippet replaced."""
    return text.replace(mutation.original, mutation.replacement, 1)


def validate_all(mutations: Iterable[Mutation], read: Callable[[str], str]) -> list[str]:
    """Every problem with ``mutations`` (duplicate ids, missing files, stale or ambiguous snippets)."""
    problems, seen = [], set()
    for m in mutations:
        if m.id in seen:
            problems.append(f"{m.id}: duplicate id")
        seen.add(m.id)
        try:
            text = read(m.file)
        except OSError as e:
            problems.append(f"{m.id}: cannot read {m.file}: {e}")
            continue
        if (why := validate(m, text)) is not None:
            problems.append(f"{m.id}: {why}")
    return problems


def select(only: list[str] | None, modules: list[str] | None) -> list[Mutation]:
    """The mutations chosen by ``--only`` and ``--module`` (all by default)."""
    known_ids, known_modules = {m.id for m in MUTATIONS}, {m.module for m in MUTATIONS}
    unknown = [i for i in only or [] if i not in known_ids] + [x for x in modules or [] if x not in known_modules]
    if unknown:
        raise SetupError(
            f"unknown mutation id or module: {', '.join(unknown)} (see --list; modules: "
            f"{', '.join(sorted(known_modules))})"
        )
    return [m for m in MUTATIONS if (not only or m.id in only) and (not modules or m.module in modules)]


# ------------------------------------------------------------------------------------------------ the copy
@dataclass
class Copy:
    """A snapshot of the repository (``repo``) with an overlay virtualenv (``venv``) that imports it."""

    repo: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self) -> dict[str, str]:
        """The environment pytest runs in: the copy on PYTHONPATH, the overlay's bin first on PATH (its
        ``proxrl`` console script), no byte-code files (a restored file of equal size and mtime second must
        never be read from a stale .pyc of its mutant), no PYTEST_ADDOPTS (the default tier, exactly)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONHOME")}
        env.update(
            PYTHONPATH=str(self.repo),
            PYTHONDONTWRITEBYTECODE="1",
            VIRTUAL_ENV=str(self.venv),
            PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        return env


def repository_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files of the working tree (their current contents are copied)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


def snapshot_repository(dest: Path) -> None:
    """Copy the working tree (uncommitted edits included; no .git, .venv, runs or caches) to ``dest``."""
    files = repository_files()
    if files:
        for f in files:
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    else:  # not a git checkout
        shutil.copytree(
            ROOT,
            dest,
            ignore=shutil.ignore_patterns(
                ".git", ".venv*", "runs", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache"
            ),
        )


def make_overlay_venv(path: Path, repo: Path) -> None:
    """A virtualenv on the same base interpreter whose ``.pth`` puts ``repo`` on sys.path and then adds the
    project venv's site-packages. The project's editable install maps ``proxrl`` to the working tree through a
    meta-path finder that runs after the path-based one, so ``repo``'s ``proxrl`` wins in every process started
    with this interpreter, whatever its cwd or PYTHONPATH."""
    venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(path)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(path), "platbase": str(path)}))
    lines = [str(repo)] + [f"import site; site.addsitedir({d!r})" for d in site.getsitepackages()]
    (purelib / "_proxrl_mutation.pth").write_text("\n".join(lines) + "\n")
    # the console script, bound to the overlay's interpreter
    script = path / "bin" / "proxrl"
    script.write_text(
        f"#!{path / 'bin' / 'python'}\nimport sys\nfrom proxrl.cli import main\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    script.chmod(0o755)


def make_copy(workdir: Path, index: int, source: Path | None = None) -> Copy:
    """Copy number ``index`` under ``workdir``: a fresh snapshot of the working tree, or of ``source``."""
    base = workdir / f"copy-{index}"
    shutil.rmtree(base, ignore_errors=True)
    copy = Copy(base / "repo", base / "venv")
    copy.repo.mkdir(parents=True)
    if source is None:
        snapshot_repository(copy.repo)
    else:
        shutil.copytree(source, copy.repo, dirs_exist_ok=True)
    make_overlay_venv(copy.venv, copy.repo)
    return copy


# ------------------------------------------------------------------------------------------------ running pytest
def default_tier_files(repo: Path) -> list[str]:
    """Every file pytest collects from ``testpaths = ["tests"]`` (python_files: test_*.py, *_test.py)."""
    found = {p for pattern in ("test_*.py", "*_test.py") for p in (repo / "tests").rglob(pattern)}
    return sorted(str(p.relative_to(repo)) for p in found if "__pycache__" not in p.parts)


def ordered_files(mutation: Mutation | None, all_files: list[str]) -> list[str]:
    """``all_files`` reordered, none dropped or repeated: the mutation's own tests, its module's (MODULE_TESTS,
    then files named after the module), then the rest (slow files last)."""
    patterns = (
        [*mutation.tests, *MODULE_TESTS.get(mutation.module, ()), f"test_*{mutation.module}*.py"] if mutation else []
    )
    slow_rank = {name: i for i, name in enumerate(SLOW_TESTS)}
    rest = sorted(all_files, key=lambda f: (slow_rank.get(Path(f).name, -1), f))
    order: list[str] = []
    for f in [f for pattern in patterns for f in rest if fnmatch.fnmatch(Path(f).name, pattern)] + rest:
        if f not in order:
            order.append(f)
    assert sorted(order) == sorted(all_files), "reordering must neither drop nor repeat a test file"
    return order


@dataclass
class Outcome:
    """How one pytest run ended."""

    status: str  # killed | survived | timeout | error
    killed_by: str | None
    seconds: float
    log: Path


RUNNING: set[subprocess.Popen[bytes]] = set()  # the pytest processes now running (killed on Ctrl-C with --jobs)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group ``proc`` leads (pytest and whatever the tests started)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


SUMMARY_LINE = re.compile(r"^(FAILED|ERROR) (.+?)(?: - .*)?$")


def failures(output: str) -> list[str]:
    """The node ids of the FAILED/ERROR lines of pytest's short summary (-rfE), in order."""
    found = []
    for line in output.splitlines():
        if match := SUMMARY_LINE.match(line.strip()):
            node = match.group(2).strip()
            found.append(f"{node} (error)" if match.group(1) == "ERROR" else node)
    if not found and "ImportError while loading conftest" in output:
        found.append("tests/conftest.py (import error)")
    return found


def run_pytest(copy: Copy, files: list[str], log: Path, timeout: float, extra: tuple[str, ...] = ("-x",)) -> Outcome:
    """Run the default tier's ``files`` in ``copy``; the whole process group is killed after ``timeout`` s."""
    cmd = [str(copy.python), "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *extra, *files]
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(
            cmd, cwd=copy.repo, env=copy.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        RUNNING.add(proc)
        rc: int | None = None  # None: timed out
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:  # end the process group pytest leads: on a timeout, on Ctrl-C (pytest runs in its own session
            # and gets no SIGINT), and any process the tests left behind
            kill_group(proc)
            proc.wait()
            RUNNING.discard(proc)
    seconds = time.monotonic() - start
    output = log.read_text(errors="replace")
    if rc is None:
        return Outcome("timeout", f"timeout after {timeout:.0f} s", seconds, log)
    if rc == 0:
        return Outcome("survived", None, seconds, log)
    if rc == 5:  # no tests collected: a broken set-up, not a kill
        return Outcome("error", "pytest collected no tests (exit 5)", seconds, log)
    return Outcome("killed", next(iter(failures(output)), f"pytest exit code {rc}"), seconds, log)


# ------------------------------------------------------------------------------------------------ preflight
PROBE = "import proxrl; print(proxrl.__file__)"


def check_imports(copy: Copy) -> str:
    """Check that pytest, a subprocess that resets PYTHONPATH and moves elsewhere (as tests/test_cli.py's
    run_cli does), and the ``proxrl`` console script all import the copy's proxrl; returns its __file__."""
    expected = copy.repo / "proxrl" / "__init__.py"
    env = copy.env()
    bare = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory() as elsewhere:
        cases = [
            ("pytest's process (cwd and PYTHONPATH at the copy)", env, copy.repo),
            (
                "a subprocess with PYTHONPATH=tests/ and another cwd",
                dict(env, PYTHONPATH=str(copy.repo / "tests")),
                Path(elsewhere),
            ),
            ("a subprocess without PYTHONPATH", bare, Path(elsewhere)),
        ]
        for what, e, cwd in cases:
            r = subprocess.run([str(copy.python), "-c", PROBE], env=e, cwd=cwd, capture_output=True, text=True)
            got = r.stdout.strip()
            if r.returncode != 0 or Path(got) != expected:
                raise SetupError(f"{what} imports proxrl from {got or '?'} instead of {expected}:\n{r.stderr[-2000:]}")
        # the console script on the tests' PATH: which proxrl/__init__.py its interpreter loads (python -v)
        script = shutil.which("proxrl", path=env["PATH"])
        if script is None or Path(script) != copy.venv / "bin" / "proxrl":
            raise SetupError(f"the proxrl console script on the tests' PATH is {script}, not the overlay's")
        r = subprocess.run(
            [script, "--help"], env=dict(bare, PYTHONVERBOSE="1"), cwd=elsewhere, capture_output=True, text=True
        )
        loaded = [line for line in r.stderr.splitlines() if line.startswith("# code object from")]
        if (
            r.returncode != 0
            or not any(str(expected) in line for line in loaded)
            or any(str(ROOT / "proxrl") + os.sep in line for line in loaded)
        ):
            raise SetupError(f"the proxrl console script does not import {expected}:\n{r.stderr[-2000:]}")
    return str(expected)


def check_collection(copy: Copy, files: list[str]) -> int:
    """The reordered file list collects exactly the default tier (``pytest`` with no arguments)."""

    def collect(args: list[str]) -> list[str]:
        r = subprocess.run(
            [str(copy.python), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
            cwd=copy.repo,
            env=copy.env(),
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise SetupError(f"pytest --collect-only failed in the copy:\n{r.stdout[-3000:]}{r.stderr[-2000:]}")
        return [line for line in r.stdout.splitlines() if "::" in line]

    default, reordered = collect([]), collect(files)
    if sorted(default) != sorted(reordered):
        missing, extra = set(default) - set(reordered), set(reordered) - set(default)
        raise SetupError(
            f"the reordered run does not collect the default tier: missing {sorted(missing)[:5]}, "
            f"extra {sorted(extra)[:5]}, {len(reordered)} vs {len(default)} tests"
        )
    return len(default)


def check_canary(copy: Copy, workdir: Path, timeout: float) -> Outcome:
    """A deliberately broken copy (advantages.py raises on import) must be killed: proof that the tests run
    against the copy and not the working tree."""
    path = copy.repo / ADV
    original = path.read_text()
    path.write_text(original + '\nraise RuntimeError("proxrl mutation canary")\n')
    try:
        outcome = run_pytest(copy, ["tests/test_advantages.py"], workdir / "logs" / "canary.log", timeout)
    finally:
        path.write_text(original)
    if outcome.status != "killed" or "proxrl mutation canary" not in outcome.log.read_text(errors="replace"):
        raise SetupError(
            f"the canary mutant was not killed ({outcome.status}; see {outcome.log}): the tests do "
            "not run against the copy"
        )
    return outcome


# ------------------------------------------------------------------------------------------------ the run
@dataclass
class Result:
    mutation: Mutation
    outcome: Outcome

    @property
    def counts_against(self) -> bool:
        """A non-equivalent mutant that was not killed."""
        return self.mutation.equivalent is None and self.outcome.status in ("survived", "error")


def run_mutation(
    m: Mutation, copy: Copy, originals: dict[str, str], all_files: list[str], workdir: Path, timeout: float
) -> Outcome:
    """Apply ``m`` to ``copy``, run pytest -x on the reordered default tier, restore the file."""
    path = copy.repo / m.file
    path.write_text(apply(m, originals[m.file]))
    # a Ray mutation: the default tier and the Ray tier (pyproject's addopts deselect ``ray``; this -m selects it)
    extra = ("-x", "-m", RAY_AND_DEFAULT) if m.ray else ("-x",)
    try:
        return run_pytest(copy, ordered_files(m, all_files), workdir / "logs" / f"{m.id}.log", timeout, extra)
    finally:
        path.write_text(originals[m.file])


def fmt_result(r: Result) -> str:
    o = r.outcome
    status = o.status.upper() if o.status in ("survived", "error") and not r.mutation.equivalent else o.status
    eq = "  [equivalent]" if r.mutation.equivalent else ""
    return f"{status:<8} {o.seconds:6.1f} s  {r.mutation.id}{eq}" + (f"  <- {o.killed_by}" if o.killed_by else "")


def run(args: argparse.Namespace, mutations: list[Mutation]) -> list[Result]:
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(workdir / "logs", ignore_errors=True)
    print(f"copying the working tree to {workdir / 'copy-0'} ...", flush=True)
    first = make_copy(workdir, 0)
    originals = {m.file: (first.repo / m.file).read_text() for m in mutations}
    problems = validate_all(mutations, lambda f: originals[f])
    if problems:
        raise SetupError("stale mutations (fix the list in scripts/mutation.py):\n  " + "\n  ".join(problems))
    all_files = default_tier_files(first.repo)

    print(f"proxrl.__file__ under test: {check_imports(first)}  (also in subprocesses and the console script)")
    print(f"collection: the reordered runs collect the default tier's {check_collection(first, all_files)} tests")
    canary = check_canary(first, workdir, timeout=300.0)
    print(f"canary: a broken copy is killed ({canary.seconds:.1f} s, {canary.killed_by})", flush=True)
    if not args.no_baseline:
        print("baseline: the default tier on the unmutated copy ...", flush=True)
        base = run_pytest(
            first, ordered_files(None, all_files), workdir / "logs" / "baseline.log", args.timeout, extra=()
        )  # without -x: name every failing test
        if base.status != "survived":
            failed = failures(base.log.read_text(errors="replace")) or [str(base.killed_by)]
            raise SetupError(
                f"the unmutated copy does not pass the default tier ({base.status}; see {base.log}):\n  "
                + "\n  ".join(failed)
                + "\nevery mutant would count as killed: fix the tests first "
                "(or, knowingly, --no-baseline)"
            )
        print(f"baseline: passed in {base.seconds:.1f} s", flush=True)

    copies: queue.Queue[Copy] = queue.Queue()
    copies.put(first)
    for k in range(1, max(1, args.jobs)):
        copies.put(extra := make_copy(workdir, k, source=first.repo))
        check_imports(extra)
    total, done, lock = len(mutations), [0], threading.Lock()

    def work(m: Mutation) -> Result:
        copy = copies.get()
        try:
            result = Result(m, run_mutation(m, copy, originals, all_files, workdir, args.timeout))
        finally:
            copies.put(copy)
        with lock:
            done[0] += 1
            print(f"[{done[0]:>3}/{total}] {fmt_result(result)}", flush=True)
        return result

    print(f"running {total} mutation(s), {max(1, args.jobs)} at a time; logs in {workdir / 'logs'}", flush=True)
    if args.jobs <= 1:
        return [work(m) for m in mutations]
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    try:
        futures = [pool.submit(work, m) for m in mutations]
        return [f.result() for f in futures]
    except BaseException:  # Ctrl-C: drop the queued mutations and end the running ones
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(RUNNING):
            kill_group(proc)
        raise
    finally:
        pool.shutdown(wait=True)


# ------------------------------------------------------------------------------------------------ reporting
def module_rows(results: Iterable[tuple[Mutation, str]]) -> list[tuple[str, int, int, int, int, int]]:
    """(module, killed, timeout, survived-or-error, equivalent, scored) per module, in MUTATIONS order."""
    rows: dict[str, list[int]] = {}
    for m in MUTATIONS:
        rows.setdefault(m.module, [0, 0, 0, 0, 0])
    for m, status in results:
        r = rows[m.module]
        if m.equivalent is not None:
            r[3] += 1
            continue
        r[4] += 1
        r[{"killed": 0, "timeout": 1}.get(status, 2)] += 1
    return [(mod, *r) for mod, r in rows.items() if sum(r)]  # type: ignore[misc]


def print_report(results: list[Result]) -> None:
    print("\nper module (equivalent mutants not scored):")
    print(f"  {'module':<14}{'killed':>8}{'timeout':>9}{'survived':>10}{'equiv.':>8}   score")
    for mod, killed, timeout, survived, eq, scored in module_rows((r.mutation, r.outcome.status) for r in results):
        score = f"{killed + timeout}/{scored}" if scored else "-"
        print(f"  {mod:<14}{killed:>8}{timeout:>9}{survived:>10}{eq:>8}   {score}")
    killed = sum(r.outcome.status in ("killed", "timeout") for r in results if r.mutation.equivalent is None)
    scored = sum(r.mutation.equivalent is None for r in results)
    print(f"  {'total':<14}{'':>35}   {killed}/{scored}")
    groups = [
        ("SURVIVED", [r for r in results if r.mutation.equivalent is None and r.outcome.status == "survived"]),
        ("ERROR (could not be judged)", [r for r in results if r.outcome.status == "error"]),
        ("killed by timeout", [r for r in results if r.outcome.status == "timeout"]),
    ]
    for title, rs in groups:
        if rs:
            print(f"\n{title}:")
            for r in rs:
                print(
                    f"  {r.mutation.id}: {r.mutation.description}"
                    + (f" ({r.outcome.killed_by})" if r.outcome.status == "error" else "")
                )
    eq = [r for r in results if r.mutation.equivalent is not None]
    if eq:
        print("\nequivalent mutants (not scored):")
        for r in eq:
            note = (
                "survived, as expected"
                if r.outcome.status == "survived"
                else f"{r.outcome.status} by {r.outcome.killed_by}: NOT equivalent after all?"
            )
            print(f"  {r.mutation.id}: {note} ({r.mutation.equivalent})")


def md_escape(text: str) -> str:
    return text.replace("|", "\\|")


CELL_SPLIT = re.compile(r"(?<!\\)\|")


def read_markdown_rows(section: str) -> dict[str, list[str]]:
    """Rows of an earlier results table, by mutation id: [id, module, description, outcome, killed by, s, date]."""
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in CELL_SPLIT.split(line.strip())[1:-1]]
        if len(cells) == 7 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    return rows


def write_markdown(path: Path, results: list[Result]) -> None:
    """Write (or update) the results section between the markers of ``path``; rows of mutations not run this
    time are kept from the previous run (with their date) as long as the mutation still exists."""
    text = path.read_text() if path.exists() else ""
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        old_section, tail = rest.split(MARK_END, 1)
    else:
        head, old_section, tail = text.rstrip() + "\n\n## Mutation testing results\n\n", "", "\n"
    today = datetime.date.today().isoformat()
    rows = read_markdown_rows(old_section)
    for r in results:
        o = r.outcome
        outcome = (
            o.status
            if r.mutation.equivalent
            else {"survived": "**SURVIVED**", "error": "**ERROR**"}.get(o.status, o.status)
        )
        by = md_escape(o.killed_by or "")
        rows[r.mutation.id] = [
            f"`{r.mutation.id}`",
            r.mutation.module,
            "",
            outcome,
            f"`{by}`" if by and o.status == "killed" else by,
            f"{o.seconds:.0f}",
            today,
        ]
    by_id = {m.id: m for m in MUTATIONS}
    table = []
    for m in MUTATIONS:  # current list order; descriptions always current
        if m.id in rows:
            cells = rows[m.id]
            cells[1], cells[2] = (
                m.module,
                md_escape(m.description + (f" *(equivalent: {m.equivalent})*" if m.equivalent else "")),
            )
            if m.equivalent:  # an equivalent survivor is no alarm
                cells[3] = cells[3].strip("*").lower()
            table.append(cells)
    statuses = []
    for cells in table:
        word = cells[3].strip("*").lower()
        statuses.append((by_id[cells[0].strip("`")], word))
    lines = [
        "",
        f"_Updated {today} by `python scripts/mutation.py --markdown docs/testing.md`; {len(table)} of "
        f"{len(MUTATIONS)} mutations have a result (the date column says when each was last run)._",
        "",
        "| module | killed | killed by timeout | survived | equivalent | score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    total_k = total_s = 0
    for mod, killed, timeout, survived, eq, scored in module_rows(statuses):
        score = f"{killed + timeout}/{scored}" if scored else "–"
        lines.append(f"| {mod} | {killed} | {timeout} | {survived} | {eq} | {score} |")
        total_k, total_s = total_k + killed + timeout, total_s + scored
    lines += [
        f"| **total** | | | | | **{total_k}/{total_s}** |",
        "",
        "| mutation | module | change | outcome | killed by | s | run |",
        "|---|---|---|---|---|---:|---|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table]
    path.write_text(head + MARK_BEGIN + "\n".join(lines) + "\n" + MARK_END + tail)
    print(f"\nwrote the results into {path}")


# ------------------------------------------------------------------------------------------------ main
def list_mutations(mutations: list[Mutation]) -> int:
    """Print and validate ``mutations`` against the working tree (nothing is run); 0 if every snippet is fine."""
    problems = validate_all(mutations, lambda f: (ROOT / f).read_text())
    bad = {p.split(":", 1)[0] for p in problems}
    for m in mutations:
        flag = "STALE" if m.id in bad else "ok"
        eq = "  [equivalent]" if m.equivalent else ""
        print(f"{flag:<6}{m.module:<14}{m.id:<42}{m.description}{eq}")
    by_module: dict[str, int] = {}
    for m in mutations:
        by_module[m.module] = by_module.get(m.module, 0) + 1
    print(f"\n{len(mutations)} mutations (" + ", ".join(f"{k} {v}" for k, v in by_module.items()) + ")")
    if problems:
        print("\nproblems:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    print("every snippet occurs exactly once and every mutated file compiles")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these mutation ids")
    parser.add_argument(
        "--module",
        nargs="+",
        metavar="MODULE",
        help="run only mutations of these modules (a source file's name: "
        + ", ".join(dict.fromkeys(m.module for m in MUTATIONS))
        + ")",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the mutations and validate their snippets; run nothing"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="mutations run at once, each in its own copy "
        "(default 1: this is a 2-core machine and the tests are timing-sensitive)",
    )
    parser.add_argument("--markdown", type=Path, help="write the results between the mutation markers of this file")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds before a mutant's pytest "
        "is killed and the mutant counted as killed by timeout (default %(default)s)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="scratch directory for the copies and logs (default %(default)s)",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the run of the default tier on the unmutated copy (~2 minutes)"
    )
    args = parser.parse_args(argv)
    try:
        mutations = select(args.only, args.module)
        if args.list:
            return list_mutations(mutations)
        started = time.monotonic()
        signal.signal(signal.SIGTERM, _interrupt)  # a terminated run ends its pytest process groups too
        results = run(args, mutations)
    except SetupError as e:
        print(f"\nmutation testing cannot run: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted (the working tree was never touched; the copies are in the work directory)", file=sys.stderr
        )
        return 130
    print_report(results)
    print(f"\n{len(results)} mutation(s) in {(time.monotonic() - started) / 60:.1f} min")
    if args.markdown:
        write_markdown(args.markdown, results)
    return 1 if any(r.counts_against for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
