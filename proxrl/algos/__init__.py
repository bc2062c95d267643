"""One file per algorithm family (``pg``, ``offpolicy_pg``, ``ppo``, ``multiagent``, ``grpo``): its config at the
top, then a class whose ``learn()`` reads collect → advantages → update → log, composing the pure estimators and
losses. Shared by composition: ``agent`` (what every env-stepping trainer shares, typed over ``EnvTrainer``) and
``common`` (seeding, devices, RNG state, minibatches, stats, finiteness checks)."""
