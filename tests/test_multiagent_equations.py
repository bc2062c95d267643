"""MAPPO's critic targets and HAPPO's sequential update against the seed's equations, redone by hand on the
samples the trainer actually drew (``recording_games`` records every env step).

- MAPPO: the central critic regresses on joint-GAE targets of the team reward Σ_i r_i, bootstrapped with
  V(final state) where an episode is truncated (never where it terminates).
- HAPPO: agents update one after another in a fresh random order; agent i_m maximises the clipped surrogate
  with its advantage multiplied by M = Π_{j before i_m} π_j^new(a_j|o_j) / π_j^old(a_j|o_j).

The critic tests set Adam's ε ≫ |g| so that a step is lr/ε · m̂, linear in the gradient: with a small ε Adam is
nearly invariant to the gradient's scale, and the value the critic is pulled towards would hardly show.
Each test also shows that the wrong variant of its equation ends measurably elsewhere.
"""

from __future__ import annotations

import copy
import math
from dataclasses import fields

import pytest
import torch

import recording_games
import turn_game
from proxrl import MultiAgentPPO
from proxrl.marl.batch import MultiAgentBatch
from proxrl.marl.value_norm import ValueNormalizer

TOL = 2e-5


def run(
    method: str, iterations: int, env_kwargs: dict, env: str = "recording_games", **overrides
) -> tuple[MultiAgentPPO, list, list]:
    """Train; returns the agent, snapshots of its policy before each iteration (and after the last), and the
    recorded env steps of each iteration (``recording_games.STEPS``, or ``turn_game.MOVES`` as steps)."""
    cfg = dict(
        method=method,
        env_kwargs=env_kwargs,
        num_envs=1,
        num_steps=16,
        num_epochs=4,
        num_minibatches=1,
        ent_coef=0.0,
        max_grad_norm=0.0,
        hidden_sizes=(16,),
        seed=1,
        tensorboard=False,
        progress=False,
    )
    cfg.update(overrides)
    agent = MultiAgentPPO(env, **cfg)
    snapshots, samples = [copy.deepcopy(agent.policy)], []
    recording_games.STEPS.clear()
    turn_game.MOVES.clear()

    def after(a: MultiAgentPPO, row: dict) -> None:
        snapshots.append(copy.deepcopy(a.policy))
        # a move of a turn-based game as a step: only the mover is rewarded
        moves = [{**m, "rewards": (m["reward"],)} for m in turn_game.MOVES]
        samples.append(list(recording_games.STEPS) + moves)
        recording_games.STEPS.clear()
        turn_game.MOVES.clear()

    agent.learn(iterations * cfg["num_steps"], callback=after)
    return agent, snapshots, samples


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def value(critic: torch.nn.Module, state: float) -> torch.Tensor:
    return critic(torch.tensor([[state]]))[0, 0]


# ------------------------------------------------------------------------------------------------ MAPPO critic
def team_gae_targets(
    steps: list[dict],
    critic: torch.nn.Module,
    gamma: float,
    lam: float,
    team: str | int = "sum",
    bootstrap: bool = True,
) -> torch.Tensor:
    """R̂_t = Â_t + V(s_t) with Â the joint GAE of the team reward R_t = Σ_i r_i (one env copy, rows in order):
    δ_t = R_t + γ V' − V(s_t), V' = 0 after a termination, V(final state) after a truncation, else V(s_{t+1});
    Â_t = δ_t + γλ Â_{t+1} unless the episode ended at t."""
    with torch.no_grad():
        adv, later = torch.zeros(len(steps)), torch.tensor(0.0)
        for t in range(len(steps) - 1, -1, -1):
            s = steps[t]
            reward = sum(s["rewards"]) if team == "sum" else s["rewards"][0 if team == "agent_0" else team]
            v_next = (
                torch.tensor(0.0)
                if s["terminated"] or (s["truncated"] and not bootstrap)
                else value(critic, s["next_state"])
            )
            delta = reward + gamma * v_next - value(critic, s["state"])
            ended = s["terminated"] or s["truncated"]
            later = delta + (0.0 if ended else gamma * lam * later)
            adv[t] = later
        return adv + torch.stack([value(critic, s["state"]) for s in steps])


def critic_reference(
    initial: torch.nn.Module,
    steps: list[dict],
    targets: torch.Tensor,
    lr: float,
    eps: float,
    epochs: int,
    vf_coef: float,
    critics: int = 1,
) -> list[torch.Tensor]:
    """Adam on vf_coef · ½ mean (V(s_t) − R̂_t)², the mean over every (row, critic) pair when ``critics`` local
    critics share one loss (IPPO)."""
    critic = copy.deepcopy(initial)
    opt = torch.optim.Adam(critic.parameters(), lr=lr, eps=eps)
    states = torch.tensor([[s["state"]] for s in steps])
    for _ in range(epochs):
        loss = vf_coef * 0.5 * ((critic(states)[:, 0] - targets) ** 2).mean() / critics
        opt.zero_grad()
        loss.backward()
        opt.step()
    return params(critic)


CRITIC = dict(lr=50.0, adam_eps=1000.0, gamma=0.9, gae_lambda=0.8, vf_coef=0.5)  # lr/ε = 0.05, linear steps


@pytest.mark.parametrize(
    "case,env_kwargs,wrong",
    [
        # one-step games where the agents' rewards differ: the target is r_0 + r_1, not agent 0's reward
        (
            "team_reward",
            {"payoffs": [[[1.0, 0.0], [0.0, 1.0]], [[0.0, 3.0], [3.0, -2.0]]], "length": 1},
            {"team": "agent_0"},
        ),
        # 3-step episodes cut by a time limit: the last step bootstraps with V(final state)
        (
            "truncation",
            {"payoffs": [[[1.0, 1.0], [1.0, 1.0]]] * 2, "length": 3, "terminate": False},
            {"bootstrap": False},
        ),
        # one agent terminates as the other is cut by the time limit: the team's episode is truncated, bootstrapped
        (
            "mixed_end",
            {"payoffs": [[[1.0, 1.0], [1.0, 1.0]]] * 2, "length": 3, "terminate": "mixed"},
            {"bootstrap": False},
        ),
    ],
)
def test_mappo_critic_regresses_on_joint_gae_of_the_team_reward(case, env_kwargs, wrong):
    agent, snapshots, samples = run("mappo", 1, env_kwargs, **CRITIC)
    initial, steps = snapshots[0].critics[0], samples[0]
    assert len(steps) == 16
    targets = team_gae_targets(steps, initial, CRITIC["gamma"], CRITIC["gae_lambda"])
    expected = critic_reference(initial, steps, targets, CRITIC["lr"], CRITIC["adam_eps"], 4, CRITIC["vf_coef"])
    assert distance(params(agent.policy.critics[0]), expected) < TOL
    wrong_targets = team_gae_targets(steps, initial, CRITIC["gamma"], CRITIC["gae_lambda"], **wrong)
    assert (wrong_targets - targets).abs().max() > 0.03  # (V(final state) of an untrained critic is small)
    elsewhere = critic_reference(initial, steps, wrong_targets, CRITIC["lr"], CRITIC["adam_eps"], 4, CRITIC["vf_coef"])
    assert distance(elsewhere, expected) > 50 * TOL


def test_ippo_critics_regress_on_each_agents_own_gae_with_the_truncation_bootstrap():
    # IPPO: agent i's critic V_i(o_i) on the GAE of its own reward r_i; 3-step episodes cut by a time limit
    env_kwargs = {"payoffs": [[[1.0, 1.0], [1.0, 1.0]], [[2.0, 2.0], [2.0, 2.0]]], "length": 3, "terminate": False}
    agent, snapshots, samples = run("ippo", 1, env_kwargs, **CRITIC)
    for i in range(2):
        initial = snapshots[0].critics[i]
        targets = team_gae_targets(samples[0], initial, CRITIC["gamma"], CRITIC["gae_lambda"], team=i)
        expected = critic_reference(
            initial, samples[0], targets, CRITIC["lr"], CRITIC["adam_eps"], 4, CRITIC["vf_coef"], critics=2
        )
        assert distance(params(agent.policy.critics[i]), expected) < TOL, i
        no_bootstrap = team_gae_targets(
            samples[0], initial, CRITIC["gamma"], CRITIC["gae_lambda"], team=i, bootstrap=False
        )
        elsewhere = critic_reference(
            initial, samples[0], no_bootstrap, CRITIC["lr"], CRITIC["adam_eps"], 4, CRITIC["vf_coef"], critics=2
        )
        assert distance(elsewhere, expected) > 50 * TOL


@pytest.mark.parametrize("truncate", [False, True])
def test_turn_based_collector_marks_every_game_end_and_the_central_value_of_every_row(truncate):
    # one copy of a 3-move game, 6 rows a rollout: moves by first, second, first | first, second, first; the
    # second game ends with the rollout's last move
    agent = MultiAgentPPO(
        "turn_game",
        method="mappo",
        env_kwargs={"length": 3, "truncate": truncate},
        num_envs=1,
        num_steps=6,
        hidden_sizes=(16,),
        tensorboard=False,
        progress=False,
    )
    collector = agent.start_envs()
    critic = agent.policy.critics[0]
    ends = [False, False, True] * 2
    for _ in range(2):  # the second rollout too: nothing stale from the first
        b = collector.collect()
        # the two carry rows come first; empty here (every rollout ends with a game, so no action is held back)
        assert not b.alive[:2].any()
        b = MultiAgentBatch(
            **{f.name: None if getattr(b, f.name) is None else getattr(b, f.name)[2:] for f in fields(b)}
        )
        assert b.alive[:, 0].sum(-1).tolist() == [1] * 6
        assert b.alive[:, 0, 0].tolist() == [True, False, True] * 2
        assert b.team_terminated[:, 0].tolist() == [e and not truncate for e in ends]
        assert b.team_truncated[:, 0].tolist() == [e and truncate for e in ends]
        with torch.no_grad():
            expected = critic(b.state[:, 0])  # V(s_t) [6, 1], the same for both agents
            final = value(critic, 0.4)  # after the third move
        torch.testing.assert_close(b.values[:, 0], expected.expand(6, 2), rtol=0, atol=1e-6)
        # V(s_{t+1}) of the joint GAE: the next move's state within a game, V(final state) where a game was cut
        mid = [0, 1, 3, 4]
        torch.testing.assert_close(b.team_next_values[mid, 0], expected[[t + 1 for t in mid], 0], rtol=0, atol=1e-6)
        if truncate:
            torch.testing.assert_close(b.team_next_values[[2, 5], 0], final.expand(2), rtol=0, atol=1e-6)


@pytest.mark.parametrize("truncate", [False, True])
def test_mappo_on_a_turn_based_game_regresses_on_joint_gae_cut_at_game_ends(truncate):
    agent, snapshots, samples = run("mappo", 1, {"length": 3, "truncate": truncate}, env="turn_game", **CRITIC)
    initial, steps = snapshots[0].critics[0], samples[0]
    assert len(steps) == 16 and sum(s["terminated"] or s["truncated"] for s in steps) == 5
    steps = steps[:15]  # the 16th move starts a game: it awaits its reward, held back for the next rollout
    targets = team_gae_targets(steps, initial, CRITIC["gamma"], CRITIC["gae_lambda"])
    expected = critic_reference(initial, steps, targets, CRITIC["lr"], CRITIC["adam_eps"], 4, CRITIC["vf_coef"])
    assert distance(params(agent.policy.critics[0]), expected) < TOL


# ------------------------------------------------------------------------------------------------ value_norm
def two_pass(batches: list[torch.Tensor]) -> tuple[float, float]:
    """Mean and (biased) variance of every target seen, with ValueNormalizer's prior of 1e-4 samples of mean 0 and
    variance 1, computed in one go over all of them (float64)."""
    x, c0 = torch.cat([b.double().reshape(-1) for b in batches]) if batches else torch.zeros(0), 1e-4
    total = c0 + x.numel()
    mean = float(x.sum()) / total
    return mean, (c0 * 1.0 + float((x**2).sum())) / total - mean**2


def test_value_normaliser_equals_a_two_pass_mean_and_variance_over_batches_of_other_means():
    torch.manual_seed(0)
    batches = [
        torch.randn(n, dtype=torch.float64) * scale + shift
        for n, scale, shift in [(5, 1, 3), (17, 4, -2), (9, 0.5, 10)]
    ]
    vn = ValueNormalizer(True)
    for i, batch in enumerate(batches):
        vn.update(batch)
        mean, var = two_pass(batches[: i + 1])
        assert vn.mean == pytest.approx(mean, rel=1e-12) and vn.var == pytest.approx(var, rel=1e-12), i
    x = torch.tensor([-1.0, 0.5, 7.0], dtype=torch.float64)
    std = math.sqrt(var + 1e-8)
    torch.testing.assert_close(vn.normalize(x), (x - mean) / std, rtol=1e-12, atol=0)
    torch.testing.assert_close(vn.denormalize(x), x * std + mean, rtol=1e-12, atol=0)
    off = ValueNormalizer(False)
    off.update(batches[0])
    assert off.normalize(x) is x and off.denormalize(x) is x and off.count == 1e-4


class Denormalized(torch.nn.Module):
    """V of a critic trained on normalised targets, in the targets' units: V_raw(s) · std + mean."""

    def __init__(self, critic: torch.nn.Module, mean: float, var: float) -> None:
        super().__init__()
        self.critic, self.mean, self.std = critic, mean, math.sqrt(var + 1e-8)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.critic(s) * self.std + self.mean


def test_mappo_with_value_norm_regresses_on_normalised_targets_and_bootstraps_with_denormalised_values():
    # two iterations: the first folds its targets into the running statistics and regresses on them normalised;
    # the second computes its joint GAE from V denormalised with those statistics (mean ≈ 3 here, so a
    # denormalisation that forgot the mean would aim ~3 lower)
    env_kwargs = {"payoffs": [[[1.0, 2.0], [2.0, 3.0]], [[1.0, 2.0], [2.0, 4.0]]], "length": 3, "terminate": False}
    agent, snapshots, samples = run("mappo", 2, env_kwargs, value_norm=True, **CRITIC)
    critic = copy.deepcopy(snapshots[0].critics[0])
    opt = torch.optim.Adam(critic.parameters(), lr=CRITIC["lr"], eps=CRITIC["adam_eps"])
    seen: list[torch.Tensor] = []
    for steps in samples:
        v = Denormalized(critic, *two_pass(seen))
        targets = team_gae_targets(steps, v, CRITIC["gamma"], CRITIC["gae_lambda"])
        seen.append(targets)
        mean, var = two_pass(seen)
        normalised = ((targets.double() - mean) / math.sqrt(var + 1e-8)).float()
        states = torch.tensor([[s["state"]] for s in steps])
        for _ in range(4):
            loss = CRITIC["vf_coef"] * 0.5 * ((critic(states)[:, 0] - normalised) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert two_pass(seen)[0] > 2.0
    assert agent.value_norm.mean == pytest.approx(two_pass(seen)[0], rel=1e-5)
    assert distance(params(agent.policy.critics[0]), params(critic)) < TOL


# ------------------------------------------------------------------------------------------------ HAPPO
CLIMB = {"payoffs": [[[11.0, -30.0, 0.0], [-30.0, 7.0, 6.0], [0.0, 0.0, 5.0]]] * 2, "length": 1}


def happo_iteration(
    actors: torch.nn.ModuleList,
    opts: list,
    critic: torch.nn.Module,
    steps: list[dict],
    order: list[int],
    clip_eps: float,
    epochs: int,
    m_rule: str = "ratio",
) -> None:
    """One HAPPO update of ``actors`` in place (one-step episodes: Â = Σ_i r_i − V(s), normalised)."""
    n = len(steps)
    obs = torch.tensor([[s["state"]] for s in steps])
    acts = torch.tensor([s["actions"] for s in steps])
    with torch.no_grad():
        adv = torch.tensor([sum(s["rewards"]) for s in steps]) - critic(obs)[:, 0]
        old = [actors[i](obs).log_softmax(-1).gather(1, acts[:, i : i + 1])[:, 0] for i in range(2)]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    m = torch.ones(n)
    for i in order:
        for _ in range(epochs):
            logp = actors[i](obs).log_softmax(-1).gather(1, acts[:, i : i + 1])[:, 0]
            ratio = (logp - old[i]).exp()
            a = adv * m  # M is a constant of agent i's objective
            loss = -torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a).mean()
            opts[i].zero_grad()
            loss.backward()
            opts[i].step()
        with torch.no_grad():
            new = actors[i](obs).log_softmax(-1).gather(1, acts[:, i : i + 1])[:, 0]
            if m_rule == "ratio":  # M ← M · π_i^new / π_i^old
                m = m * (new - old[i]).exp()
            elif m_rule == "inverse":
                m = m * (old[i] - new).exp()


def test_happo_weights_each_agents_advantage_by_the_ratio_of_the_agents_updated_before_it():
    iterations, lr, eps = 8, 0.05, 1e-5
    agent, snapshots, samples = run("happo", iterations, CLIMB, lr=lr, adam_eps=eps)
    actors = copy.deepcopy(snapshots[0].actors)
    opts = [torch.optim.Adam(actors[i].parameters(), lr=lr, eps=eps) for i in range(2)]
    orders = []
    for k in range(iterations):
        outcomes = {}
        for order in ([0, 1], [1, 0]):
            trial_actors, trial_opts = copy.deepcopy((actors, opts))
            happo_iteration(trial_actors, trial_opts, snapshots[k].critics[0], samples[k], order, 0.2, 4)
            outcomes[tuple(order)] = (
                distance(params(trial_actors), params(snapshots[k + 1].actors)),
                trial_actors,
                trial_opts,
            )
        matches = [o for o, (d, _, _) in outcomes.items() if d < TOL]
        assert len(matches) == 1, f"iteration {k}: distances {[(o, d) for o, (d, _, _) in outcomes.items()]}"
        orders.append(matches[0])
        if k == 0:  # M ≠ 1 changes the second agent's update: without it, or inverted, it ends elsewhere
            for rule in ("one", "inverse"):
                trial_actors, trial_opts = copy.deepcopy((actors, opts))
                happo_iteration(
                    trial_actors, trial_opts, snapshots[0].critics[0], samples[0], list(matches[0]), 0.2, 4, m_rule=rule
                )
                assert distance(params(trial_actors), params(snapshots[1].actors)) > 50 * TOL, rule
        _, actors, opts = outcomes[matches[0]]
    assert set(orders) == {(0, 1), (1, 0)}, f"the agent order never changed in {iterations} iterations: {orders}"
    assert distance(params(agent.policy.actors), params(actors)) < TOL
