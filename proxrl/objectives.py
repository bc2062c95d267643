"""Surrogate objectives as pure functions returning ``(loss, stats)``: loss is minimised, stats are detached.

Each function's tensors are flat batches ``[B]`` of per-sample quantities (or ``[B, ...]`` as stated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from . import kl


def clipped_surrogate_terms(ratio: Tensor, adv: Tensor, clip_low: float, clip_high: float) -> Tensor:
    """Per-sample (or per-token) min(ρ Â, clip(ρ, 1 − ε_low, 1 + ε_high) Â), the term J^CLIP averages.

    ε_high > ε_low lets unlikely tokens grow further ("clip-higher", DAPO); ε_low = ε_high is PPO's clip."""
    return torch.minimum(ratio * adv, ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * adv)


def clip_fractions(
    ratio: Tensor, adv: Tensor, clip_low: float, clip_high: float, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """(low, high): the shares of samples (of the tokens where ``mask`` is 1) whose term of J^CLIP the clip holds
    constant, so that they give no gradient: ρ < 1 − ε_low with Â < 0, and ρ > 1 + ε_high with Â > 0.

    ``clip_frac`` = low + high is proxrl's one definition, used by PPO, the fused gradient and GRPO (TRL's
    clip_ratio counts the same); SB3 and CleanRL count |ρ − 1| > ε whatever the sign of Â, which also counts
    samples the min leaves unclipped. Detached."""
    with torch.no_grad():
        low = ((ratio < 1.0 - clip_low) & (adv < 0)).to(ratio.dtype)
        high = ((ratio > 1.0 + clip_high) & (adv > 0)).to(ratio.dtype)
        if mask is None:
            return low.mean(), high.mean()
        m = mask.to(ratio.dtype)
        n = m.sum().clamp(min=1.0)
        return (low * m).sum() / n, (high * m).sum() / n


def clipped_surrogate(logp: Tensor, old_logp: Tensor, adv: Tensor, clip_eps: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Negative clipped surrogate −J^CLIP (Schulman et al. 2017, the seed's Equ. Clip-PPO).

    J^CLIP = E[min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â)] with ρ = π_θ(a|s)/π_θold(a|s). The gradient is zero exactly
    where the min selects the clipped branch (ρ > 1 + ε with Â > 0, or ρ < 1 − ε with Â < 0).
    Stats: ``approx_kl`` (k3 estimate of D_KL(π_old ‖ π_θ)) and ``clip_frac`` (:func:`clip_fractions`).
    """
    ratio = (logp - old_logp).exp()
    loss = -clipped_surrogate_terms(ratio, adv, clip_eps, clip_eps).mean()
    low, high = clip_fractions(ratio, adv, clip_eps, clip_eps)
    return loss, {"approx_kl": kl_k3_mean(logp, old_logp), "clip_frac": low + high}


LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
SAMPLING_CORRECTIONS = ("none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def log_importance_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor, level: str = "token") -> Tensor:
    """ln ρ: per token, ``[B, L]``, ln π_θ(o_t|…) − ln π_old(o_t|…); or per completion (GSPO, Zheng et al. 2025),
    ``[B, 1]``, the length-normalised sequence ratio ln s_i = (1/|o_i|) Σ_t (ln π_θ − ln π_old) over its tokens."""
    log_ratio = logp - old_logp
    if level == "token":
        return log_ratio
    if level == "sequence":
        m = mask.to(log_ratio.dtype)
        return (log_ratio * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)
    raise ValueError(f"unknown importance_sampling_level {level!r}; allowed: {', '.join(IMPORTANCE_SAMPLING_LEVELS)}")


def sampling_correction(
    old_logp: Tensor,
    sampling_logp: Tensor,
    mask: Tensor,
    mode: str,
    c_max: float | None = 3.0,
    c_min: float | None = None,
) -> Tensor:
    """The importance weight that corrects for a sampler whose distribution μ differs from the trainer's π_θold
    (another engine, other kernels, top-p), as TRL's ``vllm_importance_sampling_mode``:

        w_{i,t} = π_θold(o_t|…) / μ(o_t|…)        (token modes, ``[B, L]``),
        w_i = Π_t π_θold(o_t|…) / μ(o_t|…)        (sequence modes, ``[B, 1]``; over the completion's tokens),

    then ``*_truncate`` clips w to [c_min, c_max] (truncated importance sampling, TIS; Yao et al. 2025, "Your
    efficient RL framework secretly brings you off-policy RL training") and ``*_mask`` sets w to 0 outside
    [c_min, c_max] (masked importance sampling, MIS). A bound of None is no bound. The weight carries no gradient:
    it multiplies each token's clipped surrogate (:class:`GRPOBatch`'s ``sampling_weight``). A token whose μ is NaN
    (a sampler that did not give it) counts with ln w = 0, as in TRL."""
    return bound_sampling_ratio(sampling_ratio(old_logp, sampling_logp, mask, mode), mode, c_max, c_min)


def sampling_ratio(old_logp: Tensor, sampling_logp: Tensor, mask: Tensor, mode: str) -> Tensor:
    """w = π_θold/μ before its bounds: per token, or per completion for the ``sequence_*`` modes
    (:func:`sampling_correction`)."""
    if mode not in SAMPLING_CORRECTIONS[1:]:
        raise ValueError(f"unknown sampling correction {mode!r}; allowed: {', '.join(SAMPLING_CORRECTIONS[1:])}")
    # a sampler that gave no log-prob for a token (NaN) gets none of its correction there: w = 1, as TRL does
    log_w = (old_logp.detach() - sampling_logp) * mask.to(old_logp.dtype)
    log_w = torch.nan_to_num(log_w, nan=0.0)
    if mode.startswith("sequence"):
        log_w = log_w.sum(-1, keepdim=True)
    return log_w.exp()


def bound_sampling_ratio(w: Tensor, mode: str, c_max: float | None, c_min: float | None) -> Tensor:
    """The bounds of :func:`sampling_correction` on w = π_θold/μ: clipped to [c_min, c_max] (``*_truncate``) or 0
    outside them (``*_mask``); None is no bound."""
    if mode.endswith("truncate"):
        return w if c_min is None and c_max is None else w.clamp(min=c_min, max=c_max)
    outside = (w < (c_min if c_min is not None else -math.inf)) | (w > (c_max if c_max is not None else math.inf))
    return w.masked_fill(outside, 0.0)


def corrected_sampling_weight(
    old_logp: Tensor, sampling_logp: Tensor, mask: Tensor, mode: str, c_max: float | None, c_min: float | None
) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`sampling_correction`'s weight w (``[B, L]``, or ``[B, 1]`` for the sequence modes) and its detached
    stats over the tokens where ``mask`` ``[B, L]`` is 1: ``logp_gap_mean`` and ``logp_gap_max``, the mismatch
    |ln π_old − ln μ| (a token with no μ counts no gap), ``is_weight_mean`` (w's mean) and ``is_weight_corrected``
    (the share of weights the bounds changed: truncated or masked)."""
    raw = sampling_ratio(old_logp, sampling_logp, mask, mode)
    weight = bound_sampling_ratio(raw, mode, c_max, c_min)
    with torch.no_grad():
        gap = torch.nan_to_num((old_logp - sampling_logp).abs() * mask, nan=0.0)  # a token with no μ: no gap counted
        tokens = mask.sum().clamp(min=1.0)
        stats = {
            "logp_gap_mean": gap.sum() / tokens,
            "is_weight_mean": (weight * mask).sum() / tokens,
            "is_weight_corrected": ((weight != raw).to(mask.dtype) * mask).sum() / tokens,
            "logp_gap_max": gap.max(),
        }
    return weight, stats


# --- the GRPO loss family: a named batch, TRL's reductions over tokens, the per-token terms, one loss object ---
@dataclass(frozen=True)
class GRPOBatch:
    """One micro-batch of the GRPO loss: B completions of L tokens (padded), its tensors named as in house rule 8.

    - ``logp`` ``[B, L]``: ln π_θ of each completion token, with its gradient;
    - ``old_logp`` ``[B, L]``: ln π_θold, the policy that sampled them (``logp.detach()`` when μ = 1);
    - ``adv`` ``[B, 1]``: one Â per completion (GRPO), or ``[B, L]``: one per token (GAE; token level only);
    - ``mask`` ``[B, L]``: 1 on the completion tokens the loss counts, 0 on padding (and filtered completions);
    - ``ref_logp`` ``[B, L]``: ln π_ref (None: no KL term);
    - ``sampling_weight`` ``[B, L]`` or ``[B, 1]``: π_old/μ of :func:`sampling_correction` (None: no correction);
    - ``num_sequences`` B, ``num_tokens`` N, ``num_micro_batches`` M: the whole batch's completions, completion
      tokens and micro-batches (None, None, 1: this micro-batch's), so that a step's micro-batch losses add up to
      the batch's loss (:class:`SequenceMean` and its siblings read them).
    """

    logp: Tensor
    old_logp: Tensor
    adv: Tensor
    mask: Tensor
    ref_logp: Tensor | None = None
    sampling_weight: Tensor | None = None
    num_sequences: int | None = None
    num_tokens: Tensor | float | None = None
    num_micro_batches: int = 1

    def __post_init__(self) -> None:
        rows, length = self.mask.shape
        assert self.logp.shape == self.old_logp.shape == (rows, length), (self.logp.shape, self.mask.shape)
        assert self.adv.shape in ((rows, 1), (rows, length)), (self.adv.shape, self.mask.shape)

    @property
    def sequences(self) -> int:
        """B: the whole batch's completions (this micro-batch's when ``num_sequences`` is None)."""
        return self.mask.shape[0] if self.num_sequences is None else self.num_sequences


def token_mean(values: Tensor, mask: Tensor, num_tokens: Tensor | float | None = None) -> Tensor:
    """Σ v / N over the tokens where ``mask`` ``[B, L]`` is 1, N ``num_tokens`` (this batch's count when None)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / (mask.sum().clamp(min=1.0) if num_tokens is None else num_tokens)


@dataclass(frozen=True)
class SequenceMean:
    """loss_type grpo (and sapo): Σ_i (Σ_t v_it / |o_i|) / B, the mean over each completion's tokens, then over
    completions (Shao et al. 2024; a token of a long completion weighs less)."""

    def __call__(self, values: Tensor, batch: GRPOBatch) -> Tensor:
        mask = batch.mask.to(values.dtype)
        per_sequence = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        return per_sequence.sum() / batch.sequences


@dataclass(frozen=True)
class MicroBatchTokenMean:
    """loss_type bnpo: Σ v / Σ mask over this micro-batch's tokens, divided by the M micro-batches (TRL's bnpo: each
    micro-batch normalised by its own token count)."""

    def __call__(self, values: Tensor, batch: GRPOBatch) -> Tensor:
        mask = batch.mask.to(values.dtype)
        return (values * mask).sum() / mask.sum().clamp(min=1.0) / batch.num_micro_batches


@dataclass(frozen=True)
class ConstantNormaliser:
    """loss_type dr_grpo: Σ v / (B · L_max), a constant divisor (Liu et al. 2025, Dr. GRPO: no length bias);
    ``max_len`` L_max is ``max_new_tokens`` (None: the padded length)."""

    max_len: int | None = None

    def __call__(self, values: Tensor, batch: GRPOBatch) -> Tensor:
        mask = batch.mask.to(values.dtype)
        return (values * mask).sum() / (batch.sequences * (values.shape[-1] if self.max_len is None else self.max_len))


@dataclass(frozen=True)
class TokenMean:
    """loss_type dapo (and cispo, vespo): Σ v / N, N the whole batch's completion tokens (Yu et al. 2025, DAPO's
    token-level loss; :func:`token_mean`)."""

    def __call__(self, values: Tensor, batch: GRPOBatch) -> Tensor:
        return token_mean(values, batch.mask, batch.num_tokens)


@dataclass(frozen=True)
class SequenceSum:
    """loss_type luspo: Σ_i Σ_t v_it / B, each completion's tokens summed, not averaged (LUSPO: GSPO's loss scaled
    by each completion's length, so a long completion is not weighed down)."""

    def __call__(self, values: Tensor, batch: GRPOBatch) -> Tensor:
        mask = batch.mask.to(values.dtype)
        return (values * mask).sum() / batch.sequences


Reduction = SequenceMean | MicroBatchTokenMean | ConstantNormaliser | TokenMean | SequenceSum


@dataclass(frozen=True)
class ClippedSurrogate:
    """−min(ρ_{i,t} Â_i, clip(ρ_{i,t}, 1 − ε_low, 1 + ε_high) Â_i) per token (the seed's GRPO; Shao et al. 2024),
    ρ the token's ratio or, at sequence level, its completion's s_i. Clipped: ρ < 1 − ε_low with Â < 0, ρ > 1 +
    ε_high with Â > 0 (:func:`clip_fractions`)."""

    clip_low: float
    clip_high: float
    folds_sampling_weight: ClassVar[bool] = False

    def __call__(self, ratio: Tensor, batch: GRPOBatch) -> Tensor:
        return -clipped_surrogate_terms(ratio, batch.adv, self.clip_low, self.clip_high).expand(batch.mask.shape)

    def clip_fractions(self, ratio: Tensor, batch: GRPOBatch, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """(low, high) shares of the tokens (of completions where ``mask`` is None) the clip holds constant."""
        return clip_fractions(ratio, batch.adv.expand_as(ratio), self.clip_low, self.clip_high, mask)


@dataclass(frozen=True)
class CISPOSurrogate:
    """loss_type cispo (MiniMax-M1, Chen et al. 2025): −sg(min(ρ, ε_max)) Â ln π_θ, the importance weight clipped
    and held constant, so every token keeps a gradient; ε_max is ``clip_max`` (TRL's ε_high, not 1 + ε_high)."""

    clip_max: float
    folds_sampling_weight: ClassVar[bool] = False

    def __call__(self, ratio: Tensor, batch: GRPOBatch) -> Tensor:
        return -(ratio.clamp(max=self.clip_max).detach() * batch.adv * batch.logp)

    def clip_fractions(self, ratio: Tensor, batch: GRPOBatch, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """ρ > ε_max with Â > 0: the weight held at ε_max (:func:`clip_fractions`' 1 + ε_high is ε_max here)."""
        return clip_fractions(ratio, batch.adv.expand_as(ratio), 1.0, self.clip_max - 1.0, mask)


@dataclass(frozen=True)
class SAPOSurrogate:
    """loss_type sapo (Gao et al. 2025, Soft Adaptive Policy Optimization): −σ(τ(ρ − 1)) (4/τ) Â, a smooth gate for
    the clip, τ = ``tau_pos`` where Â > 0 and ``tau_neg`` elsewhere; its gradient at ρ = 1 is the policy
    gradient's. Nothing is clipped (``clip_frac`` 0)."""

    tau_pos: float = 1.0
    tau_neg: float = 1.05
    folds_sampling_weight: ClassVar[bool] = False

    def __call__(self, ratio: Tensor, batch: GRPOBatch) -> Tensor:
        adv = batch.adv
        tau = torch.where(adv > 0, self.tau_pos, self.tau_neg)
        return -(torch.sigmoid(tau * (ratio - 1.0)) * 4.0 / tau * adv).expand(batch.mask.shape)

    def clip_fractions(self, ratio: Tensor, batch: GRPOBatch, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """(0, 0): the gate clips nothing."""
        low = high = torch.zeros(())
        return low, high


@dataclass(frozen=True)
class VESPOSurrogate:
    """loss_type vespo (VESPO): −sg(φ(w_i)) Â ln π_θ with the Gamma weight :func:`vespo_weight` of each completion's
    whole ratio w_i; the sampler's correction is folded into w_i (``folds_sampling_weight``), not multiplied after.
    ``shape`` is (k, λ) where Â ≥ 0, then (k, λ) where Â < 0. Nothing is clipped (``clip_frac`` 0)."""

    shape: tuple[float, float, float, float] = (2.0, 3.0, 3.0, 2.0)
    folds_sampling_weight: ClassVar[bool] = True

    def __call__(self, ratio: Tensor, batch: GRPOBatch) -> Tensor:
        phi = vespo_weight(batch.logp - batch.old_logp, batch.adv, batch.mask, self.shape, batch.sampling_weight)
        return -(phi * batch.adv * batch.logp)

    def clip_fractions(self, ratio: Tensor, batch: GRPOBatch, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """(0, 0): the weight is not clipped."""
        low = high = torch.zeros(())
        return low, high


Surrogate = ClippedSurrogate | CISPOSurrogate | SAPOSurrogate | VESPOSurrogate


@dataclass(frozen=True, kw_only=True)
class GRPOLoss:
    """Negative GRPO objective (the seed's GRPO section; Shao et al. 2024), per token t of completion i:

        −[min(ρ_{i,t} Â_i, clip(ρ_{i,t}, 1 − ε_low, 1 + ε_high) Â_i) − β D̂_KL,i,t],
        ρ = π_θ/π_θold,  D̂_KL = π_ref/π_θ − ln(π_ref/π_θ) − 1  (k3, ≥ 0, = 0 where π_θ = π_ref)

    with the first term ``surrogate``'s (the clip, or CISPO's, SAPO's, VESPO's term in its place), reduced over the
    completion tokens by ``reduction`` (TRL's ``loss_type``; :func:`make_grpo_loss` pairs them). With
    ``importance_sampling_level="sequence"`` (GSPO) every token of completion i uses its sequence ratio s_i
    (:func:`log_importance_ratio`) and the clip acts on whole completions. β = 0 (or no ``ref_logp``) drops the KL
    term. The batch's ``sampling_weight`` (:func:`sampling_correction`) multiplies each token's surrogate, not the
    KL term, as TRL does. ``kl_importance_weighted`` (TRL's ``use_bias_correction_kl``) makes the KL term
    β D̂_KL,i,t ρ_{i,t} (ρ with its gradient; at sequence level s_i), whose gradient is the unbiased one of the
    reverse KL off-policy (DeepSeek-V3.2, Eq. 7); even at ρ = 1 it adds β D̂_KL ∇ln π.

    Returns ``(loss, stats)``, stats detached: ``clip_frac`` = ``clip_frac_low`` + ``clip_frac_high`` (the share of
    tokens, or of completions at sequence level, whose term the clip holds constant) and ``kl`` (mean k3 over the
    tokens; k3·ρ with ``kl_importance_weighted``, as TRL logs it).
    """

    surrogate: Surrogate
    reduction: Reduction
    beta: float = 0.0
    importance_sampling_level: str = "token"
    kl_importance_weighted: bool = False

    def __post_init__(self) -> None:
        if self.importance_sampling_level not in IMPORTANCE_SAMPLING_LEVELS:
            raise ValueError(
                f"unknown importance_sampling_level {self.importance_sampling_level!r}; "
                f"allowed: {', '.join(IMPORTANCE_SAMPLING_LEVELS)}"
            )

    def __call__(self, batch: GRPOBatch) -> tuple[Tensor, dict[str, Tensor]]:
        logp, mask, beta = batch.logp, batch.mask, self.beta
        ratio = log_importance_ratio(logp, batch.old_logp, mask, self.importance_sampling_level).exp()
        per_token = self.surrogate(ratio, batch)
        if batch.sampling_weight is not None and not self.surrogate.folds_sampling_weight:
            per_token = per_token * batch.sampling_weight
        kl_tokens = None
        if batch.ref_logp is not None and beta > 0:
            kl_tokens = kl.k3(batch.ref_logp, logp)  # samples from π_θ: r = π_ref/π_θ
            if self.kl_importance_weighted:  # TRL's use_bias_correction_kl: k3·ρ, ρ with its gradient (logged so)
                kl_tokens = kl_tokens * ratio
            per_token = per_token + beta * kl_tokens
        loss = self.reduction(per_token, batch)
        # sequence level: the clip fractions are shares of completions
        low, high = self.surrogate.clip_fractions(
            ratio, batch, mask if self.importance_sampling_level == "token" else None
        )
        with torch.no_grad():
            m = mask.to(ratio.dtype)
            kl_mean = (
                (kl_tokens.detach() * m).sum() / m.sum().clamp(min=1.0) if kl_tokens is not None else torch.zeros(())
            )
        return loss, {"clip_frac": low + high, "clip_frac_low": low, "clip_frac_high": high, "kl": kl_mean}


def make_grpo_loss(
    loss_type: str,
    *,
    clip_low: float,
    clip_high: float,
    beta: float = 0.0,
    importance_sampling_level: str = "token",
    kl_importance_weighted: bool = False,
    sapo_temperatures: tuple[float, float] = (1.0, 1.05),
    vespo_shape: tuple[float, float, float, float] = (2.0, 3.0, 3.0, 2.0),
    max_len: int | None = None,
) -> GRPOLoss:
    """The :class:`GRPOLoss` of TRL's ``loss_type``, built once (house rule 4): the table below pairs each with its
    per-token term and its reduction over tokens, holding their constants (ε_low, ε_high; CISPO's ε_max =
    ``clip_high``; SAPO's τ; VESPO's (k, λ); Dr. GRPO's L_max = ``max_len``). ``luspo`` keeps the clipped
    surrogate (meant with the sequence ratio) and changes only the reduction."""
    clipped = ClippedSurrogate(clip_low, clip_high)
    family: dict[str, tuple[Surrogate, Reduction]] = {
        "grpo": (clipped, SequenceMean()),
        "bnpo": (clipped, MicroBatchTokenMean()),
        "dr_grpo": (clipped, ConstantNormaliser(max_len)),
        "dapo": (clipped, TokenMean()),
        "cispo": (CISPOSurrogate(clip_high), TokenMean()),
        "sapo": (SAPOSurrogate(*sapo_temperatures), SequenceMean()),
        "luspo": (clipped, SequenceSum()),
        "vespo": (VESPOSurrogate(vespo_shape), TokenMean()),
    }
    if loss_type not in family:
        raise ValueError(f"unknown loss_type {loss_type!r}; allowed: {', '.join(LOSS_TYPES)}")
    surrogate, reduction = family[loss_type]
    return GRPOLoss(
        surrogate=surrogate,
        reduction=reduction,
        beta=beta,
        importance_sampling_level=importance_sampling_level,
        kl_importance_weighted=kl_importance_weighted,
    )


def vespo_weight(
    log_ratio: Tensor,
    adv: Tensor,
    mask: Tensor,
    shape: tuple[float, float, float, float] = (2.0, 3.0, 3.0, 2.0),
    sampling_weight: Tensor | None = None,
) -> Tensor:
    """VESPO's Gamma weight of each completion (Variational sequence-level soft policy optimisation, as TRL's
    ``vespo``), detached ``[B, 1]``:

        φ(w) = e^λ w^k e^{−λw}  (φ(1) = 1),  ln w_i = Σ_t (ln π_θ − ln π_old) over completion i's tokens

    computed in log space, ln w clamped to [ln 1e-8, 20] (each token's log-ratio to ±20 first). ``shape`` is (k, λ)
    where Â ≥ 0, then (k, λ) where Â < 0: TRL's ``vespo_k_pos``, ``vespo_lambda_pos``, ``vespo_k_neg``,
    ``vespo_lambda_neg``. ``sampling_weight`` (π_old/μ per token) adds its logs to ln w. ``adv`` is ``[B, 1]``."""
    k_pos, lam_pos, k_neg, lam_neg = shape
    with torch.no_grad():
        m = mask.to(log_ratio.dtype)
        log_w = (log_ratio.clamp(-20.0, 20.0) * m).sum(-1, keepdim=True)
        if sampling_weight is not None:
            log_w = log_w + (sampling_weight.clamp(min=1e-8).log().clamp(max=20.0) * m).sum(-1, keepdim=True)
        log_w = log_w.clamp(math.log(1e-8), 20.0)
        positive = adv >= 0
        k = torch.where(positive, k_pos, k_neg)
        lam = torch.where(positive, lam_pos, lam_neg).clamp(min=1e-4)
        return (lam + k * log_w - lam * log_w.exp()).exp().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


def value_loss(
    values: Tensor, returns: Tensor, old_values: Tensor | None = None, clip_eps: float | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """Critic regression ½ E[(V_w(s) − R̂)²]; with ``clip_eps``, PPO's clipped form
    ½ E[max((V − R̂)², (V_old + clip(V − V_old, −ε, ε) − R̂)²)] that keeps V near its rollout value."""
    err = (values - returns) ** 2
    if clip_eps is not None:
        assert old_values is not None, "value clipping needs the rollout's values"
        clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        err = torch.maximum(err, (clipped - returns) ** 2)
    loss = 0.5 * err.mean()
    return loss, {"value_loss": loss.detach()}


def entropy_bonus(entropy: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Entropy term of J^CLIP+: H(π(·|s)) = −Σ_a π(a|s) log π(a|s), averaged; returned as a loss −H."""
    mean = entropy.mean()
    return -mean, {"entropy": mean.detach()}


def pg_loss(logp: Tensor, adv: Tensor, weight: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Negative policy-gradient surrogate −E[w Â log π_θ(a|s)], whose gradient is the seed's sampled estimator
    E[w Â ∇ln π(a|s)]: Theorem 1 with Â = G (REINFORCE), Theorem 2 with Â = Q − b(s) (G − V, GAE, δ), and the
    off-policy gradient E_β[π(a|s)/β(a|s) Q^π(s,a) ∇ln π(a|s)] with w = π/β (or a truncation of it).
    ``adv`` and ``weight`` are constants of the gradient (detached here). Stats: ``mean_weight`` (1 without w)."""
    coef = adv if weight is None else weight * adv
    loss = -(coef.detach() * logp).mean()
    with torch.no_grad():
        mean_weight = torch.ones((), device=logp.device) if weight is None else weight.mean()
    return loss, {"mean_weight": mean_weight}


def kl_penalty(kl: Tensor, kl_coef: float) -> tuple[Tensor, dict[str, Tensor]]:
    """c E[D_KL(π_old ‖ π_θ)] for per-sample exact divergences ``kl`` ``[B]``: the penalty term of J^KL (the seed's
    KL-PPO equation), added to J^CLIP by the clip + KL objective. Stats: ``kl`` (the mean divergence)."""
    mean = kl.mean()
    return kl_coef * mean, {"kl": mean.detach()}


def kl_surrogate(
    logp: Tensor, old_logp: Tensor, adv: Tensor, kl: Tensor, kl_coef: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Negative KL-penalised surrogate −J^KL = −E[ρ Â − c D_KL(π_old ‖ π_θ)] with ρ = π_θ(a|s)/π_θold(a|s) (the
    seed's KL-PPO equation); ``kl`` ``[B]`` holds the exact per-state D_KL(π_old(·|s) ‖ π_θ(·|s)), not a sample.
    Stats: ``approx_kl`` (k3), ``kl`` (exact mean) and ``clip_frac`` (0: nothing is clipped)."""
    ratio = (logp - old_logp).exp()
    penalty, stats = kl_penalty(kl, kl_coef)
    loss = -(ratio * adv).mean() + penalty
    with torch.no_grad():
        stats["approx_kl"] = kl_k3_mean(logp, old_logp)
        stats["clip_frac"] = torch.zeros((), device=logp.device)
    return loss, stats


def kl_k3_mean(logp: Tensor, old_logp: Tensor) -> Tensor:
    """Mean k3 estimate of D_KL(π_old ‖ π_θ) from the samples' log-probs (detached)."""
    return kl.k3(logp.detach(), old_logp).mean()


def importance_weight(logp: Tensor, behaviour_logp: Tensor, max_weight: float = math.inf) -> Tensor:
    """Truncated importance weight min(π(a|s)/β(a|s), c̄) of the off-policy gradient (the seed's Off-Policy PG;
    c̄ = ∞ leaves it unbiased, a finite c̄ trades bias for variance as in Retrace/IMPALA). Detached: a constant
    of the gradient, as in E_β[π/β Q^π ∇ln π]."""
    return (logp.detach() - behaviour_logp).exp().clamp(max=max_weight)
