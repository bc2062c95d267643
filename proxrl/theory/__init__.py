"""Exact quantities of small tabular MDPs (V^π, Q^π, d^π, J(θ), ∇J(θ)) against which the library's sampled
estimators are tested: :mod:`.tabular` holds them; this package re-exports its names (``theory.values(...)``)."""

from .tabular import (
    TabularMDP,
    actor_parameters,
    delayed_reward_chain,
    exact_gradient,
    objective,
    offpolicy_gradient,
    pg_theorem_gradient,
    policy_table,
    random_mdp,
    reinforce_expectation,
    sample_episodes,
    tabular_policy,
    values,
    visitation,
)

__all__ = [
    "TabularMDP",
    "actor_parameters",
    "delayed_reward_chain",
    "exact_gradient",
    "objective",
    "offpolicy_gradient",
    "pg_theorem_gradient",
    "policy_table",
    "random_mdp",
    "reinforce_expectation",
    "sample_episodes",
    "tabular_policy",
    "values",
    "visitation",
]
