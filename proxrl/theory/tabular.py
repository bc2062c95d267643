"""Exact quantities of small tabular MDPs — V^π, Q^π, visitation d^π, J(θ) and ∇J(θ) — against which the
library's sampled estimators are tested (``tests/test_theory.py``, ``docs/theory.md``).

The MDP is episodic: from (s, a) the next state is s' with probability P[s, a, s'] and the episode ends with
probability 1 − Σ_s' P[s, a, s'], the setting of the seed's proof of Theorem 1 (η(s) = expected visits).
With γ < 1 the same formulas hold for the discounted visitation η_γ(s) = Σ_k γ^k Pr(s_k = s).

The policy is the library's own :class:`~proxrl.policies.ActorCritic` on a ``Discrete`` observation space with no
hidden layer, so π(·|s) = softmax(W e_s + b): a tabular softmax whose gradients flow to the parameters the
trainers update.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from ..policies.actor_critic import ActorCritic
from ..rollout import Batch


@dataclass
class TabularMDP:
    """P ``[S, A, S]`` (rows sum to at most 1; the rest is the probability of ending), r ``[S, A]`` expected reward,
    ρ₀ ``[S]`` start distribution, γ discount. Tensors in float64."""

    P: Tensor
    r: Tensor
    rho0: Tensor
    gamma: float = 1.0

    @property
    def n_states(self) -> int:
        """S, the number of states."""
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        """A, the number of actions."""
        return self.P.shape[1]


def random_mdp(
    n_states: int = 4,
    n_actions: int = 3,
    end_prob: float = 0.2,
    gamma: float = 1.0,
    seed: int = 0,
    reward_range: tuple[float, float] = (-1.0, 1.0),
) -> TabularMDP:
    """A random MDP where every (s, a) ends the episode with probability ``end_prob`` and rewards are uniform in
    ``reward_range``."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n_states, n_actions, n_states, generator=g, dtype=torch.float64) ** 3  # uneven transitions
    p = p / p.sum(-1, keepdim=True) * (1.0 - end_prob)
    low, high = reward_range
    r = torch.rand(n_states, n_actions, generator=g, dtype=torch.float64) * (high - low) + low
    rho0 = torch.rand(n_states, generator=g, dtype=torch.float64) + 0.1
    return TabularMDP(p, r, rho0 / rho0.sum(), gamma)


def delayed_reward_chain(n_states: int = 5, continue_prob: float = 0.95, gamma: float = 0.9) -> TabularMDP:
    """States 0 … n−1 from 0; action 0 moves one state on, action 1 stays; every step continues the episode with
    probability ``continue_prob``. The one reward, 1, is for action 0 in the last state (it ends the episode), so an
    action's worth shows only γ^k later: the MDP where the discount of the returns matters most."""
    p = torch.zeros(n_states, 2, n_states, dtype=torch.float64)
    r = torch.zeros(n_states, 2, dtype=torch.float64)
    for s in range(n_states):
        if s + 1 < n_states:
            p[s, 0, s + 1] = continue_prob
        p[s, 1, s] = continue_prob
    r[n_states - 1, 0] = 1.0
    p[n_states - 1, 0] = 0.0  # reaching the reward ends the episode
    rho0 = torch.zeros(n_states, dtype=torch.float64)
    rho0[0] = 1.0
    return TabularMDP(p, r, rho0, gamma)


def tabular_policy(mdp: TabularMDP, seed: int = 0, scale: float = 1.0) -> ActorCritic:
    """The library's actor-critic as a tabular softmax policy over ``mdp``'s states, with random logits."""
    torch.manual_seed(seed)
    policy = ActorCritic(
        spaces.Discrete(mdp.n_states), spaces.Discrete(mdp.n_actions), hidden_sizes=(), ortho_init=False
    )
    with torch.no_grad():
        for p in policy.actor_head.parameters():
            p.normal_(0.0, scale)
    return policy


def policy_table(policy: ActorCritic, n_states: int) -> Tensor:
    """π(a|s) ``[S, A]`` in float64, differentiable in the policy's parameters."""
    states = torch.arange(n_states)
    return policy.action_params(states).log_softmax(-1).exp().double()


def actor_parameters(policy: ActorCritic) -> list[Tensor]:
    """The parameters π depends on (the actor head's weight and bias)."""
    return list(policy.actor_head.parameters())


def values(mdp: TabularMDP, pi: Tensor) -> tuple[Tensor, Tensor]:
    """(V^π ``[S]``, Q^π ``[S, A]``): V = (I − γ P_π)⁻¹ r_π, Q = r + γ P V (Bellman equations, solved exactly)."""
    p_pi = torch.einsum("sa,sax->sx", pi, mdp.P)
    r_pi = (pi * mdp.r).sum(-1)
    v = torch.linalg.solve(torch.eye(mdp.n_states, dtype=p_pi.dtype) - mdp.gamma * p_pi, r_pi)
    return v, mdp.r + mdp.gamma * torch.einsum("sax,x->sa", mdp.P, v)


def visitation(mdp: TabularMDP, pi: Tensor) -> Tensor:
    """η(s) = Σ_k γ^k Pr(s_k = s | ρ₀, π) ``[S]``: ρ₀ᵀ (I − γ P_π)⁻¹, the expected (discounted) visits of the
    seed's proof; d^π = η / Σ η is the state distribution of Theorem 1."""
    p_pi = torch.einsum("sa,sax->sx", pi, mdp.P)
    eta: Tensor = torch.linalg.solve((torch.eye(mdp.n_states, dtype=p_pi.dtype) - mdp.gamma * p_pi).T, mdp.rho0)
    return eta


def objective(mdp: TabularMDP, pi: Tensor) -> Tensor:
    """J(θ) = Σ_s ρ₀(s) V^π(s)."""
    return mdp.rho0 @ values(mdp, pi)[0]


def _flat_grad(scalar: Tensor, params: list[Tensor]) -> Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(scalar, params)]).double()


def exact_gradient(mdp: TabularMDP, policy: ActorCritic) -> Tensor:
    """∇J(θ) by automatic differentiation through the linear solve for V^π (flattened over the actor's
    parameters)."""
    return _flat_grad(objective(mdp, policy_table(policy, mdp.n_states)), actor_parameters(policy))


def pg_theorem_gradient(mdp: TabularMDP, policy: ActorCritic) -> Tensor:
    """Theorem 1 evaluated exactly: Σ_s η(s) Σ_a Q^π(s,a) ∇π(a|s) (equality with η; ∝ with d^π)."""
    pi = policy_table(policy, mdp.n_states)
    with torch.no_grad():
        q = values(mdp, pi)[1]
        eta = visitation(mdp, pi)
    return _flat_grad((eta[:, None] * q * pi).sum(), actor_parameters(policy))


def reinforce_expectation(mdp: TabularMDP, policy: ActorCritic) -> Tensor:
    """What REINFORCE as implemented (Σ_t G_t ∇ln π(a_t|s_t), every step weighted alike, not by γ^t) estimates:
    Σ_s η_1(s) Σ_a Q_γ^π(s,a) ∇π(a|s), with η_1 the undiscounted expected visits. With γ = 1 it is ∇J; with γ < 1
    it is the common practice of SB3, CleanRL and Spinning Up, which is not ∇J_γ (Thomas 2014, "Bias in natural
    actor-critic algorithms")."""
    pi = policy_table(policy, mdp.n_states)
    with torch.no_grad():
        q = values(mdp, pi)[1]
        eta = visitation(TabularMDP(mdp.P, mdp.r, mdp.rho0, 1.0), pi)
    return _flat_grad((eta[:, None] * q * pi).sum(), actor_parameters(policy))


def offpolicy_gradient(mdp: TabularMDP, policy: ActorCritic, beta: Tensor) -> Tensor:
    """The seed's off-policy gradient Σ_s η^β(s) Σ_a Q^π(s,a) ∇π(a|s): the behaviour policy's visitation, the
    target policy's Q, and the term π ∇Q^π dropped (the seed's approximation (i)). ``beta`` is β(a|s) ``[S, A]``."""
    pi = policy_table(policy, mdp.n_states)
    with torch.no_grad():
        q = values(mdp, pi)[1]
        eta_beta = visitation(mdp, beta.double())
    return _flat_grad((eta_beta[:, None] * q * pi).sum(), actor_parameters(policy))


def sample_episodes(
    mdp: TabularMDP, behaviour: Tensor, n_episodes: int, rng: np.random.Generator, max_len: int = 200
) -> Batch:
    """``n_episodes`` complete episodes under ``behaviour`` (β(a|s) ``[S, A]``) as a time-major :class:`Batch`,
    one episode per column (the layout the trainers' estimators take). ``logp`` holds log β(a|s); ``values`` is
    zero (fill it with a critic). Rewards are r(s, a); an episode still running at ``max_len`` is truncated."""
    p_beta = behaviour.detach().double().numpy()
    cdf_a = p_beta.cumsum(-1)
    trans = mdp.P.numpy()
    cdf_s = trans.cumsum(-1)  # the last entry is the probability of continuing
    r = mdp.r.numpy()
    n = n_episodes
    obs = np.zeros((max_len, n), dtype=np.int64)
    act = np.zeros((max_len, n), dtype=np.int64)
    rew = np.zeros((max_len, n))
    term = np.zeros((max_len, n), dtype=bool)
    valid = np.zeros((max_len, n), dtype=bool)
    s = np.minimum((rng.random(n)[:, None] > mdp.rho0.numpy().cumsum()).sum(-1), mdp.n_states - 1)
    alive = np.ones(n, dtype=bool)
    t_end = max_len
    for t in range(max_len):
        obs[t], valid[t] = s, alive
        a = np.minimum((rng.random(n)[:, None] > cdf_a[s]).sum(-1), mdp.n_actions - 1)
        act[t] = a
        rew[t] = np.where(alive, r[s, a], 0.0)
        u = rng.random(n)
        ends = u >= cdf_s[s, a, -1]
        nxt = np.minimum((u[:, None] > cdf_s[s, a]).sum(-1), mdp.n_states - 1)
        term[t] = alive & ends
        alive = alive & ~ends
        s = nxt
        if not alive.any():
            t_end = t + 1
            break
    trunc = np.zeros((t_end, n), dtype=bool)
    trunc[-1] = alive  # still running at max_len
    logp = np.log(p_beta[obs[:t_end], act[:t_end]])
    f32 = torch.float32
    return Batch(
        obs=torch.from_numpy(obs[:t_end]),
        actions=torch.from_numpy(act[:t_end]),
        logp=torch.from_numpy(logp).to(f32),
        values=torch.zeros(t_end + 1, n),
        rewards=torch.from_numpy(rew[:t_end]).to(f32),
        terminated=torch.from_numpy(term[:t_end]),
        truncated=torch.from_numpy(trunc),
        valid=torch.from_numpy(valid[:t_end]),
        starts=torch.zeros(t_end, n, dtype=torch.bool),  # no recurrent policy here
    )
