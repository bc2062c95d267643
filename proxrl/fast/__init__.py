"""Opt-in speed paths, each chosen once at construction where its ``supports()`` says it applies, and each
checked by one differential-test harness against the reference path (``tests/test_fast_paths.py``):

- :mod:`.fused` — the Clip-PPO minibatch gradient in closed form (PPO's ``fused_gradient``);
- :mod:`.numpy_acting` — the acting forward pass in numpy (the gymnasium rollout);
- :mod:`.flat_adam` — parameters in one flat tensor, a two-op gradient clip and the fused Adam kernel called
  directly (every env-stepping trainer).

Where ``supports()`` is false the reference path runs: autograd through ``objectives.py``, the torch policy,
``Optimizer.step()``.
"""
