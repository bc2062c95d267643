"""Where an env trainer's rollouts come from (``runners``): ``local``, one :class:`~proxrl.rollout.Rollout` over
the N envs in this process (the default), or ``ray``, ``num_runners`` runners of M = N / num_runners envs each as
Ray actors on a local or joined cluster (:mod:`.ray_group`). A runner (:mod:`.runner`) owns its envs and a CPU
copy of the policy and returns a whole rollout fragment per call; the group (:mod:`.group`) hands the trainer one
batch with the surface of a local rollout, so every env-stepping trainer scales out without knowing it."""
