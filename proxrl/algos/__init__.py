"""One file per algorithm family (``pg``, ``offpolicy_pg``, ``ppo``, ``multiagent``, ``grpo``): its config at the
top, then a class whose ``learn()`` reads collect → advantages → update → log, composing the pure estimators and
losses. Shared: ``agent.EnvTrainer``, the base class of every env-stepping trainer (one level deep: what they share,
as methods), and ``common`` (seeding, devices, RNG state, minibatches, stats, finiteness checks)."""
