"""The parallel collector's steps (PettingZoo ``ParallelEnv``): in each row every live agent of every copy acts at
once. An agent that leaves the episode early is not alive afterwards; a finished copy is reset at once (its next row
is the new episode's first step); a truncation records V of the final observation (per agent, and the central one
of the team) for the bootstrap."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .collector import MultiAgentCollector


def collect_rows(c: MultiAgentCollector) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``c``'s ``num_steps`` rows: every live agent of every copy acts in each row. Returns V at each column's
    next row past the rollout ``[N, A]`` and the central V at each copy's ``[N]``."""
    b, n_env, names = c.buf, len(c.envs), c.spec.names
    d = b.obs.shape[-1]
    for t in range(c.num_steps):
        for i, env in enumerate(c.envs):
            c.write_obs(c._obs[i], b.obs[t, i], None if b.masks is None else b.masks[t, i])
            b.alive[t, i, [c.index[a] for a in c._obs[i]]] = True  # _obs holds the live agents only
            b.state[t, i] = c.state_row(env, b.obs[t, i])
        actions, b.logp[t], b.values[t] = c.act(
            b.obs[t], b.state[t], None if b.masks is None else b.masks[t], not c.deterministic
        )
        b.actions[t] = actions
        final_obs = np.zeros((n_env, len(names), d), b.obs.dtype)
        final_state = np.zeros((n_env, c.spec.state_dim), np.float32)
        ended = []
        for i, env in enumerate(c.envs):
            live = list(env.agents)
            obs, rew, term, trunc, _ = env.step({a: c.env_action(a, actions[i, c.index[a]]) for a in live})
            c._ep_length[i] += 1
            for a in live:
                k = c.index[a]
                b.rewards[t, i, k] = rew.get(a, 0.0)
                b.terminated[t, i, k], b.truncated[t, i, k] = bool(term.get(a, False)), bool(trunc.get(a, False))
                c._ep_return[i, k] += b.rewards[t, i, k]
            c.write_obs({a: obs[a] for a in live if a in obs}, final_obs[i], None)
            c._obs[i] = {a: o for a, o in obs.items() if a in env.agents}
            if not env.agents:
                ended.append(i)
                b.team_terminated[t, i] = bool(b.terminated[t, i][b.alive[t, i]].all())
                b.team_truncated[t, i] = not b.team_terminated[t, i]
            if b.truncated[t, i].any() or b.team_truncated[t, i]:  # only a truncation needs V(final state)
                final_state[i] = c.state_row(env, final_obs[i])
        if b.truncated[t].any() or b.team_truncated[t].any():
            v_final = c.values(final_obs, final_state)
            b.bootstrap[t] = np.where(b.truncated[t], v_final, 0.0)
            b.team_bootstrap[t] = np.where(b.team_truncated[t], v_final[:, 0], 0.0)
        for i in ended:
            c.finish_episode(i)
            c._obs[i] = c.reset_copy(i)
    obs_now = np.zeros_like(b.obs[0])
    state_now = np.zeros_like(b.state[0])
    for i, env in enumerate(c.envs):
        c.write_obs(c._obs[i], obs_now[i], None)
        state_now[i] = c.state_row(env, obs_now[i])
    last = c.values(obs_now, state_now)
    return last, last[:, 0]
