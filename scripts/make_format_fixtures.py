"""Write small checkpoints of today's format into ``tests/data/format-v<N>/`` (N: ``checkpoint.FORMAT_VERSION``),
each with what its trainer's ``predict`` (or greedy generation) gives today on a handful of fixed inputs.

``tests/test_format_compat.py`` loads them with ``proxrl.load`` and checks that the same inputs give the same
outputs, that ``proxrl eval`` reads one and that training resumes from each: a refactor that changes what a stored
checkpoint means fails there. Run it once per format version (the folder of an older version is kept as it is)::

    python scripts/make_format_fixtures.py            # refuses to overwrite an existing folder
    python scripts/make_format_fixtures.py --overwrite

The fixtures are small on purpose (tests/data stays under ~2 MB): short runs, small networks, a tiny language
model built from a config (no download).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
NUM_INPUTS = 16  # fixed observations (or prompts) per fixture
MIN_MARGIN = 1e-3  # an input is kept only where its greedy actions lead the runner-up by this much in log π


def env_fixtures() -> dict[str, Any]:
    """name → a function that builds and trains the trainer of that fixture (a few thousand steps at most)."""
    from proxrl import PG, PPO, MultiAgentPPO, OffPolicyPG

    quiet: dict[str, Any] = dict(progress=False, tensorboard=False, seed=3)
    return {
        # normaliser statistics stored with the weights: predict must apply them
        "ppo_cartpole": lambda: PPO("CartPole-v1", norm_obs=True, num_envs=4, num_steps=128, **quiet).learn(4096),
        "reinforce_cartpole": lambda: PG("CartPole-v1", advantage="return", hidden_sizes=(32,), **quiet).learn(2048),
        # Box actions: predict clips them to the bounds
        "offpolicy_pg_pendulum": lambda: OffPolicyPG(
            "Pendulum-v1", num_envs=2, hidden_sizes=(32,), replay_size=4, **quiet
        ).learn(1024),
        "ppo_lstm_cartpole": lambda: PPO(
            "CartPole-v1", recurrent="lstm", lstm_hidden_size=16, hidden_sizes=(16,), num_envs=4, num_steps=32, **quiet
        ).learn(4096),
        "ippo_tictactoe": lambda: MultiAgentPPO(
            "pettingzoo.classic.tictactoe_v3", method="ippo", num_envs=2, num_steps=32, hidden_sizes=(32,), **quiet
        ).learn(1024),
    }


def grpo_fixture() -> Any:
    """GRPO on the addition task with a tiny Llama built from a config, warmed up briefly, two GRPO steps."""
    from proxrl import GRPO

    tiny: dict[str, Any] = dict(
        tiny_hidden_size=16, tiny_layers=1, tiny_heads=2, warmup_steps=300, prompts_per_step=2, group_size=4
    )
    run: dict[str, Any] = dict(max_new_tokens=4, lr=1e-3, eval_every=0, eval_examples=8, beta=0.0, tensorboard=False)
    return GRPO("addition", **tiny, **run, progress=False, seed=3).learn(2)


def single_agent_outputs(agent: Any, obs: np.ndarray) -> dict[str, Any]:
    """``predict``'s deterministic actions for a batch of observations (a recurrent policy: from a fresh state)."""
    out = agent.predict(obs, deterministic=True)
    actions = out[0] if isinstance(out, tuple) else out
    return {"actions": np.asarray(actions).tolist()}


def multi_agent_outputs(agent: Any, obs: np.ndarray, masks: np.ndarray) -> dict[str, Any]:
    """``MultiAgentPPO.predict``'s deterministic joint actions ``[B, A]`` for padded observations and masks; −1 for
    an agent with no legal move (in a turn-based game, the one waiting: its action is never played)."""
    actions = np.asarray(agent.predict(obs, masks=masks, deterministic=True))
    return {"actions": np.where(masks.any(-1), actions, -1).tolist()}


def grpo_outputs(agent: Any, prompts: list[str]) -> dict[str, Any]:
    """Greedy completions of ``prompts`` and the sum of each one's token log-probabilities under the policy."""
    from proxrl import lm

    cfg = agent.config
    with torch.no_grad():
        gens = lm.generate(agent.policy, agent.tokenizer, prompts, 1, cfg.max_new_tokens, greedy=True)
        logp, _ = lm.token_logps(agent.policy, gens.input_ids, gens.attention_mask, gens.prompt_len)
    return {"completions": gens.texts, "logp_sums": (logp * gens.mask).sum(1).tolist()}


def outputs(agent: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """What a fixture's trainer gives on its stored ``inputs`` (the one measurement the script and the test share)."""
    if "prompts" in inputs:
        return grpo_outputs(agent, inputs["prompts"])
    obs = np.asarray(inputs["obs"], dtype=np.float32)
    if "masks" in inputs:
        return multi_agent_outputs(agent, obs, np.asarray(inputs["masks"], dtype=bool))
    return single_agent_outputs(agent, obs)


def decisive(agent: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The first NUM_INPUTS of ``inputs`` whose greedy discrete actions lead the runner-up by MIN_MARGIN in log
    probability (so that float rounding in a refactored forward pass cannot flip them); the first NUM_INPUTS for Box
    actions."""
    logits = _log_probs(agent, inputs)
    if logits is None:
        return {key: values[:NUM_INPUTS] for key, values in inputs.items()}
    top = np.sort(logits, axis=-1)
    margin = top[..., -1] - top[..., -2]
    if "masks" in inputs:  # only the agents with a legal move act
        margin = np.where(np.asarray(inputs["masks"]).any(-1), margin, np.inf)
    margin = margin.reshape(len(top), -1).min(1)
    # as many of each greedy action as there are (round robin), so the fixture tells the actions apart
    greedy = logits.argmax(-1).reshape(len(top), -1)
    by_action: dict[tuple[int, ...], list[int]] = {}
    for i in np.flatnonzero(margin >= MIN_MARGIN):
        by_action.setdefault(tuple(greedy[i].tolist()), []).append(int(i))
    longest = max(map(len, by_action.values()), default=0)
    rounds = [group[k] for k in range(longest) for group in by_action.values() if k < len(group)]
    chosen = sorted(rounds[:NUM_INPUTS])
    assert len(chosen) == NUM_INPUTS, f"only {len(chosen)} decisive inputs: draw more candidates"
    return {key: [values[i] for i in chosen] for key, values in inputs.items()}


@torch.no_grad()
def _log_probs(agent: Any, inputs: dict[str, Any]) -> np.ndarray | None:
    """log π(·|s) ``[B, n]`` (multi-agent: ``[B, A, n]``, masked) of a discrete policy on raw inputs, normalised as
    ``predict`` does; None for Box actions."""
    policy = agent.policy
    x = torch.as_tensor(np.asarray(inputs["obs"], dtype=np.float32), device=agent.device)
    if "masks" in inputs:
        masks = torch.as_tensor(np.asarray(inputs["masks"]))
        return np.asarray(policy.distribution(x, masks).logits.cpu().numpy())
    if not hasattr(policy.action_space, "n"):
        return None
    stats = agent.normalizer_state().get("obs")
    if stats is not None:  # predict's transform (gymnasium's NormalizeObservation, frozen, then the clip)
        mean, var = (torch.as_tensor(np.asarray(stats[k]), dtype=torch.float32) for k in ("mean", "var"))
        x = ((x - mean) / torch.sqrt(var + 1e-8)).clamp(-10.0, 10.0)
    if policy.core is not None:  # from a fresh state, as predict's first call
        starts = torch.ones(1, x.shape[0], dtype=torch.bool)
        dist = policy.sequence(x[None], policy.initial_state(x.shape[0], agent.device), starts)[0]
    else:
        dist = policy.distribution(x)
    return np.asarray(dist.logits.cpu().numpy())


def observations_from(env_id: str, seed: int, count: int) -> np.ndarray:
    """``count`` observations from random play in ``env_id`` (states a trained policy meets, not arbitrary ones)."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    seen: list[np.ndarray] = []
    while len(seen) < count:
        seen.append(np.asarray(obs, dtype=np.float32))
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(seen)


def tictactoe_inputs(seed: int, count: int) -> dict[str, Any]:
    """Boards from random legal play: each player's observation and legal-move mask, padded as ``predict`` takes."""
    from pettingzoo.classic import tictactoe_v3  # type: ignore[import-untyped]

    env = tictactoe_v3.env()
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    obs: list[list[list[float]]] = []
    masks: list[list[list[bool]]] = []
    while len(obs) < count:
        o, _, terminated, truncated, _ = env.last()
        if terminated or truncated:
            env.reset(seed=int(rng.integers(1 << 30)))
            continue
        both = [env.observe(a) for a in env.agents]
        obs.append([b["observation"].reshape(-1).astype(np.float32).tolist() for b in both])
        masks.append([b["action_mask"].astype(bool).tolist() for b in both])
        env.step(int(rng.choice(np.flatnonzero(o["action_mask"]))))
    return {"obs": obs, "masks": masks}


def write(out: Path, name: str, agent: Any, inputs: dict[str, Any]) -> None:
    """The checkpoint (a file, or GRPO's save_pretrained folder) and ``<name>.json``: inputs and outputs."""
    target = out / name if name.startswith("grpo") else out / f"{name}.pt"
    agent.save(target)
    record = {"inputs": inputs, "outputs": outputs(agent, inputs)}
    (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Write every fixture of today's format version."""
    from proxrl import checkpoint
    from proxrl.devices import limit_threads

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--overwrite", action="store_true", help="replace the folder of this format version")
    args = p.parse_args(argv)
    limit_threads(1)  # one thread: the same floats as the test workers compute
    out = ROOT / "tests" / "data" / f"format-v{checkpoint.FORMAT_VERSION}"
    if out.exists():
        if not args.overwrite:
            print(f"{out} exists (--overwrite replaces it)", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name, build in env_fixtures().items():
        agent = build()
        agent.close()
        if name.startswith("ippo"):
            candidates = tictactoe_inputs(seed=7, count=8 * NUM_INPUTS)
        else:
            candidates = {"obs": observations_from(agent.config.env, seed=7, count=8 * NUM_INPUTS).tolist()}
        inputs = decisive(agent, candidates)
        write(out, name, agent, inputs)
        print(f"wrote {name}")
    agent = grpo_fixture()
    prompts = [ex["prompt"] for ex in agent.task.held_out()[:NUM_INPUTS]]
    write(out, "grpo_addition", agent, {"prompts": prompts})
    print(f"wrote grpo_addition; {sum(f.stat().st_size for f in out.rglob('*') if f.is_file()):,} bytes in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
