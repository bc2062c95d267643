"""The turn-based collector's steps (PettingZoo ``AECEnv``): exactly one agent acts per row, ``action_mask``
observations restrict the logits, and the rewards an agent receives on other agents' turns are credited to its own
last action. A move whose reward is not all in at the rollout's end is held back and opens the next rollout (issue
35), so a game won on the next rollout's first move still puts the loser's −1 on the loser's row.

The bookkeeping lives on the collector (``_last_row``, ``_last_move``, ``_credited``, ``_held_*``): plain arrays
that an env snapshot saves with the envs (their names are the checkpoint's keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .collector import MultiAgentCollector


def _observe_all(c: MultiAgentCollector, env: Any) -> tuple[np.ndarray, np.ndarray | None]:
    obs = np.zeros((len(c.spec.names), c.buf.obs.shape[-1]), c.buf.obs.dtype)
    masks = None if c.buf.masks is None else np.ones((len(c.spec.names), c.buf.masks.shape[-1]), bool)
    c.write_obs({name: env.observe(name) for name in env.agents}, obs, masks)
    return obs, masks


def _advance(c: MultiAgentCollector, i: int) -> str:
    """Step copy i through agents whose episode is over (crediting their rewards), resetting it when the game
    ends, until an agent has to act; returns that agent."""
    b, env = c.buf, c.envs[i]
    while True:
        if not env.agents:
            c.finish_episode(i)
            c.reset_copy(i)
            continue
        name: str = env.agent_selection
        k = c.index[name]
        obs, reward, term, trunc, _ = env.last()
        row = c._last_row[i, k]
        gained = float(reward) - c._credited[i, k]
        c._credited[i, k] = 0.0
        if row >= 0:
            b.rewards[row, i, k] += gained
        c._ep_return[i, k] += gained
        if not (term or trunc):
            return name
        _mark_game_end(c, i)
        if row >= 0:
            b.terminated[row, i, k], b.truncated[row, i, k] = bool(term), bool(trunc) and not term
            if trunc and not term:
                o, _ = _observe_all(c, env)
                st = c.state_row(env, o)
                b.bootstrap[row, i, k] = c.values(o[None], st[None])[0, k]
        c._last_row[i, k] = -1
        env.step(None)


def _mark_game_end(c: MultiAgentCollector, i: int) -> None:
    """Once every agent of copy i is done, mark the team's episode end on the row of the game's last move:
    terminated if every agent terminated, else truncated with the central V(final state) as its bootstrap.
    (Nothing to mark if that move was in an earlier rollout, or the game is still going for some agent.)"""
    env, b, row = c.envs[i], c.buf, c._last_move[i]
    if row < 0 or not all(env.terminations.get(a) or env.truncations.get(a) for a in env.agents):
        return
    c._last_move[i] = -1  # marked once
    if all(env.terminations.get(a) for a in env.agents):
        b.team_terminated[row, i] = True
        return
    obs, _ = _observe_all(c, env)
    b.team_truncated[row, i] = True
    b.team_bootstrap[row, i] = c.values(obs[None], c.state_row(env, obs)[None])[0, 0]


def collect_rows(c: MultiAgentCollector) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``c``'s rows: first the carry rows of the actions the last rollout held back, then ``num_steps`` rows in
    which one agent of each copy acts. Returns V at each column's next row past the rollout ``[N, A]`` and the
    central V at each copy's ``[N]`` (:func:`_end_rollout`)."""
    b, carry = c.buf, c.carry
    c._last_row[:] = -1  # rows of the previous rollout are gone; what they await was held back (_hold)
    c._last_move[:] = -1
    _bring_held_rows(c)
    for t in range(carry, carry + c.num_steps):
        acting = []
        for i, env in enumerate(c.envs):
            name = _advance(c, i)
            k = c.index[name]
            obs, masks = _observe_all(c, env)
            b.obs[t, i], b.state[t, i] = obs, c.state_row(env, obs)
            if masks is not None and b.masks is not None:
                b.masks[t, i] = masks
            b.alive[t, i, k] = True
            acting.append((name, k))
        actions, logp, values = c.act(
            b.obs[t], b.state[t], None if b.masks is None else b.masks[t], not c.deterministic
        )
        for i, (name, k) in enumerate(acting):
            b.actions[t, i, k], b.logp[t, i, k] = actions[i, k], logp[i, k]
            b.values[t, i] = values[i]  # every agent's V of this state (a central critic's V(s) in each column)
            c._last_row[i, k] = t
            c._last_move[i] = t
            c._ep_length[i] += 1
            c.envs[i].step(c.env_action(name, actions[i, k]))
    return _end_rollout(c)


def _end_rollout(c: MultiAgentCollector) -> tuple[np.ndarray, np.ndarray]:
    """Close the rollout: an agent whose game is over gets what it received since its last action and its end
    flags there; an agent still playing has its last action held back for the next rollout, where the rewards
    of that action (which may come on the other players' turns, a lost game's −1 among them) reach its row.
    Returns V at each column's next row past the rollout (``[N, A]``: a held action's V, else V of the current
    observation) and the central V at each copy's (``[N]``: at its earliest held action, else now)."""
    b = c.buf
    last = np.zeros(b.values.shape[1:], np.float32)
    team_last = np.zeros(len(c.envs), np.float32)
    for i, env in enumerate(c.envs):
        obs, _ = _observe_all(c, env)
        v = c.values(obs[None], c.state_row(env, obs)[None])[0] if env.agents else np.zeros(len(obs))
        _mark_game_end(c, i)  # a game that ended with this rollout's last move
        held = []
        for name in env.agents:
            k = c.index[name]
            row = c._last_row[i, k]
            if not (env.terminations.get(name) or env.truncations.get(name)):
                if row >= 0:
                    _hold(c, i, k, row)
                    v[k] = b.values[row, i, k]
                    held.append(row)
                continue  # what it receives before its next action is credited then (_advance)
            pending = float(env._cumulative_rewards[name]) - c._credited[i, k]
            c._ep_return[i, k] += pending
            c._credited[i, k] += pending
            if row < 0:
                continue
            b.rewards[row, i, k] += pending
            if env.terminations.get(name):  # the game ended with this agent's last action
                b.terminated[row, i, k] = True
            elif env.truncations.get(name):
                b.truncated[row, i, k], b.bootstrap[row, i, k] = True, v[k]
        last[i] = v
        team_last[i] = b.values[min(held), i, 0] if held else v[0]
    return last, team_last


def _hold(c: MultiAgentCollector, i: int, k: int, row: int) -> None:
    """Take agent k's last action (row ``row`` of copy i) out of this rollout and keep it for the next one: its
    reward is not all in yet (issue 35: a game won on the next rollout's first move left the loser's −1 on no
    row). Its behaviour log-probability travels with it; its V is taken again by the next rollout's critic."""
    b = c.buf
    assert b.rewards[row, i, k] == 0 and not b.terminated[row, i, k], "a held action was already credited"
    b.alive[row, i, k] = False
    c._held_row[i, k] = row
    c._held_obs[i, k], c._held_state[i, k] = b.obs[row, i], b.state[row, i]
    if b.masks is not None and c._held_masks is not None:
        c._held_masks[i, k] = b.masks[row, i]
    c._held_action[i, k], c._held_logp[i, k] = b.actions[row, i, k], b.logp[row, i, k]


def _bring_held_rows(c: MultiAgentCollector) -> None:
    """Write the held actions into the carry rows, in the order they were taken (so that each column's chain of
    rows stays in time order, and the central one where players alternate: a move between two held ones of a
    player who moved twice in a row stays in the last rollout, docs/multiagent.md), and point the reward
    credit at them."""
    b, carry = c.buf, c.carry
    if not (c._held_row >= 0).any():
        return
    for i in range(len(c.envs)):
        held = [int(k) for k in np.argsort(c._held_row[i], kind="stable") if c._held_row[i, k] >= 0]
        for row, k in enumerate(held, start=carry - len(held)):
            b.obs[row, i], b.state[row, i] = c._held_obs[i, k], c._held_state[i, k]
            if b.masks is not None and c._held_masks is not None:
                b.masks[row, i] = c._held_masks[i, k]
            b.actions[row, i, k], b.logp[row, i, k], b.alive[row, i, k] = (
                c._held_action[i, k],
                c._held_logp[i, k],
                True,
            )
            c._last_row[i, k] = c._last_move[i] = row  # the latest held action is the game's last move
    c._held_row[:] = -1
    obs, state = b.obs[:carry].reshape(-1, *b.obs.shape[2:]), b.state[:carry].reshape(-1, b.state.shape[2])
    b.values[:carry] = c.values(obs, state).reshape(b.values[:carry].shape)  # V under this rollout's critic
