"""The Clip-PPO minibatch gradient with a hand-derived backward pass, for MLP actor-critics on the CPU.

For the small networks of classic control, autograd's per-op bookkeeping (~530 ATen calls per minibatch: the
forward, its graph, the backward of every op) costs more than the arithmetic. The loss PPO minimises,

    L = −J^CLIP + c_v · ½ E[(V − R̂)²]  (or its clipped form)  − c_e · E[H(π(·|s))]

(``objectives.clipped_surrogate``, ``objectives.value_loss``, ``objectives.entropy_bonus``), has short closed-form
derivatives; this module evaluates them directly and writes ∂L/∂θ into the flat gradient, in about a fifth of
the calls. ``tests/test_fast_paths.py`` checks every gradient against autograd through those three functions.

Derivatives used (B samples, ρ = exp(log π − log π_old)):
- ∂(−J^CLIP)/∂log π = −ρÂ/B where the unclipped term is the minimum (the clipped branch has zero gradient
  wherever it is the strict minimum; where both are equal the two halves sum to ρÂ/B).
- Categorical: ∂log π(a)/∂z = onehot(a) − p and ∂H/∂z = −p ⊙ (log p + H) for logits z.
- Diagonal Gaussian: ∂log π/∂μ = (a − μ)/σ², ∂log π/∂log σ = ((a − μ)/σ)² − 1, ∂H/∂log σ = 1.
- ½(V − R̂)²: V − R̂, or 0 where the clipped error is the maximum with its clamp saturated.
- Linear layer y = xWᵀ + b: ∂W = δᵀx, ∂b = Σδ, ∂x = δW; tanh and ReLU through ``aten.tanh_backward`` and
  ``aten.threshold_backward`` (autograd's own kernels).
"""

from __future__ import annotations

import math
import torch
from gymnasium import spaces
from torch import Tensor, nn

from ..objectives import clip_fractions
from .flat_adam import FlatParameters
from ..policies import ActorCritic

_ACTIVATIONS: dict[type[nn.Module], str] = {nn.Tanh: "tanh", nn.ReLU: "relu"}
_LOG_2PI = math.log(2.0 * math.pi)
Layer = tuple[nn.Linear, str | None]  # a Linear and the activation after it (None for an output layer)


def _mlp_layers(*seqs: nn.Module) -> list[Layer] | None:
    """(Linear, activation) pairs of ``seqs`` in order, or None if a module is not Linear/Tanh/ReLU/Identity."""
    linears: list[nn.Linear] = []
    acts: list[str | None] = []
    for seq in seqs:
        for m in seq.children() if isinstance(seq, nn.Sequential) else [seq]:
            if isinstance(m, nn.Linear) and m.bias is not None:
                linears.append(m)
                acts.append(None)
            elif type(m) in _ACTIVATIONS and acts and acts[-1] is None:
                acts[-1] = _ACTIVATIONS[type(m)]
            elif not isinstance(m, nn.Identity):
                return None
    return list(zip(linears, acts, strict=True))


def _forward(layers: list[Layer], x: Tensor) -> list[Tensor]:
    """Inputs of every layer plus the final output: [x, h1, ..., out]."""
    hs = [x]
    for lin, act in layers:
        if act == "tanh":  # tanh(z) = 2σ(2z) − 1: torch's CPU sigmoid is ~3× faster than its tanh
            z = torch.addmm(lin.bias, hs[-1], lin.weight.t(), beta=2.0, alpha=2.0).sigmoid_().mul_(2.0).sub_(1.0)
        else:
            z = torch.addmm(lin.bias, hs[-1], lin.weight.t())
            if act == "relu":
                z = z.relu_()
        hs.append(z)
    return hs


def _backward(layers: list[Layer], hs: list[Tensor], delta: Tensor, grads: dict[Tensor, Tensor]) -> None:
    """Backpropagate ∂L/∂out = ``delta`` through ``layers``, *writing* (not adding) each weight's gradient."""
    for i in range(len(layers) - 1, -1, -1):
        lin, act = layers[i]
        if act == "tanh":
            delta = torch.ops.aten.tanh_backward(delta, hs[i + 1])
        elif act == "relu":
            delta = torch.ops.aten.threshold_backward(delta, hs[i + 1], 0)
        torch.mm(delta.t(), hs[i], out=grads[lin.weight])
        torch.sum(delta, 0, out=grads[lin.bias])
        if i > 0:
            delta = torch.mm(delta, lin.weight)


def _actor_critic_layers(policy: ActorCritic) -> tuple[list[Layer], list[Layer]] | None:
    """The actor's and the critic's (Linear, activation) pairs, or None unless both are plain MLPs on separate
    trunks."""
    if policy.critic_trunk is None:
        return None
    actor = _mlp_layers(policy.actor_trunk, policy.actor_head)
    if actor is None:
        return None
    critic = _mlp_layers(policy.critic_trunk, policy.critic_head)
    return None if critic is None else (actor, critic)


def _clipped_surrogate(
    logp: Tensor, old_logp: Tensor, adv: Tensor, clip_eps: float, n: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """−J^CLIP's terms and its derivative in log π: (ratio ρ, log ρ, min(ρÂ, clip(ρ)Â), ∂(−J^CLIP)/∂log π), each
    ``[B]``."""
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv
    surrogate = torch.minimum(unclipped, clipped)
    d_logp = torch.where(unclipped <= clipped, unclipped, 0.0).mul_(-1.0 / n)
    return ratio, log_ratio, surrogate, d_logp


def _value_error(
    values: Tensor, returns: Tensor, old_values: Tensor, clip_eps: float, clip_vloss: bool
) -> tuple[Tensor, Tensor]:
    """(V − R̂)² (clipped or not) and ∂(½(V − R̂)²)/∂V, each ``[B]``."""
    err = values - returns
    sq = err * err
    if not clip_vloss:
        return sq, err
    delta = values - old_values
    clipped_err = old_values + delta.clamp(-clip_eps, clip_eps) - returns
    sq_clipped = clipped_err * clipped_err
    # zero only where the clipped error wins with its clamp saturated (unsaturated, V_old + (V − V_old)
    # is V up to rounding, and either branch's derivative is V − R̂)
    d_values = torch.where((sq_clipped > sq) & (delta.abs() > clip_eps), 0.0, err)
    return torch.maximum(sq, sq_clipped), d_values


class FusedClipPPOGradient:
    """∂L/∂θ of the Clip-PPO minibatch loss (above) for an :class:`ActorCritic` with separate actor and critic
    MLPs (Linear + tanh/ReLU), Discrete or Box actions, float32 on the CPU. Check :meth:`supports` first."""

    def __init__(self, policy: ActorCritic, flat: FlatParameters, vf_coef: float, ent_coef: float) -> None:
        layers = _actor_critic_layers(policy)
        assert self.supports(policy) and layers is not None, "unsupported policy for the fused gradient"
        self.policy = policy
        self.actor, self.critic = layers
        # keyed by the parameter tensors themselves (hashed by identity), Linear weights and biases included
        self.grads: dict[Tensor, Tensor] = dict(zip(flat.params, flat.grad_views, strict=True))
        self.discrete = isinstance(policy.action_space, spaces.Discrete)
        self.vf_coef, self.ent_coef = vf_coef, ent_coef

    @staticmethod
    def supports(policy: nn.Module) -> bool:
        """True for a CPU float32 :class:`ActorCritic` without an encoder, with separate trunks of Linear +
        tanh/ReLU layers and a Discrete or 1-d Box action space, without gSDE; anything else takes the autograd
        path."""
        if (
            not isinstance(policy, ActorCritic)
            or policy.critic_trunk is None
            or policy.encoder is not None
            or policy.core is not None
            or policy.use_sde
        ):
            return False
        if not all(p.device.type == "cpu" and p.dtype == torch.float32 for p in policy.parameters()):
            return False
        space = policy.action_space
        if not (isinstance(space, spaces.Discrete) or (isinstance(space, spaces.Box) and len(space.shape) == 1)):
            return False
        return _actor_critic_layers(policy) is not None

    def _log_std(self) -> nn.Parameter:
        """log σ of the diagonal Gaussian (a Box action space always has one)."""
        assert self.policy.log_std is not None, "a Box action space has a log-std parameter"
        return self.policy.log_std

    @torch.no_grad()
    def __call__(
        self,
        obs: Tensor,
        actions: Tensor,
        old_logp: Tensor,
        adv: Tensor,
        returns: Tensor,
        old_values: Tensor,
        clip_eps: float,
        clip_vloss: bool,
    ) -> tuple[Tensor, Tensor]:
        """Write ∂L/∂θ into the flat gradient for one minibatch ``[B, ...]``; returns (L, stats ``[5]``:
        policy loss, value loss, entropy, approx-KL (k3), clip fraction)."""
        n = obs.shape[0]
        x = self.policy._features(obs)
        hs_a, hs_c = _forward(self.actor, x), _forward(self.critic, x)
        params, values = hs_a[-1], hs_c[-1].squeeze(-1)

        # the policy's log π(a|s) and entropy; −J^CLIP, ½ E[(V − R̂)²] and their derivatives
        if self.discrete:
            log_p = torch.log_softmax(params, -1)
            p = log_p.exp()
            logp = log_p.gather(1, actions.long().unsqueeze(-1)).squeeze(-1)
            entropy = -(p * log_p).sum(-1)
        else:
            log_std = self._log_std()
            z = (actions - params) * (-log_std).exp()
            logp = (-0.5 * z * z - log_std).sum(-1) - 0.5 * params.shape[-1] * _LOG_2PI
            entropy = (0.5 + 0.5 * _LOG_2PI + log_std).sum().expand(n)
        ratio, log_ratio, surrogate, d_logp = _clipped_surrogate(logp, old_logp, adv, clip_eps, n)
        sq, d_values = _value_error(values, returns, old_values, clip_eps, clip_vloss)
        d_values = d_values.mul_(self.vf_coef / n).unsqueeze(-1)

        if self.discrete:
            d_params = self._categorical_grad(p, log_p, entropy, actions, d_logp, n)
        else:
            d_params = self._gaussian_grad(z, log_std, d_logp)
        _backward(self.actor, hs_a, d_params, self.grads)
        _backward(self.critic, hs_c, d_values, self.grads)

        pg_loss, v_loss, mean_entropy = -surrogate.mean(), 0.5 * sq.mean(), entropy.mean()
        loss = pg_loss + self.vf_coef * v_loss - self.ent_coef * mean_entropy
        low, high = clip_fractions(ratio, adv, clip_eps, clip_eps)
        stats = torch.stack([pg_loss, v_loss, mean_entropy, ((ratio - 1.0) - log_ratio).mean(), low + high])
        return loss, stats

    def _categorical_grad(
        self, p: Tensor, log_p: Tensor, entropy: Tensor, actions: Tensor, d_logp: Tensor, n: int
    ) -> Tensor:
        """∂L/∂z for logits z ``[B, n_actions]``: ∂L/∂log π · (onehot(a) − p), plus c_e/B · p ⊙ (log p + H)."""
        onehot = torch.zeros_like(p).scatter_(1, actions.long().unsqueeze(-1), 1.0)
        d_params = (onehot - p).mul_(d_logp.unsqueeze(-1))
        if self.ent_coef:
            d_params.add_(p * (log_p + entropy.unsqueeze(-1)), alpha=self.ent_coef / n)
        return d_params

    def _gaussian_grad(self, z: Tensor, log_std: nn.Parameter, d_logp: Tensor) -> Tensor:
        """∂L/∂μ ``[B, action_dim]``; writes ∂L/∂log σ into log σ's gradient directly."""
        inv_std = (-log_std).exp()
        d_params = (z * inv_std).mul_(d_logp.unsqueeze(-1))  # ∂log π/∂μ = (a − μ)/σ²
        # ∂L/∂log σ = Σ_b ∂L/∂log π_b (z_b² − 1) − c_e (∂H/∂log σ = 1 per dimension, averaged over B)
        torch.sub(d_logp @ (z * z), d_logp.sum(), out=self.grads[log_std]).sub_(self.ent_coef)
        return d_params
