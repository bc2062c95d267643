"""What every single-agent actor-critic trainer shares, as plain functions over the agent (no base class).

A trainer class (``PPO``, ``PG``, ``OffPolicyPG``) calls :func:`setup` in its ``__init__`` and binds the
rest as its methods (``predict = agent.predict``); only its config, ``learn`` loop and update are its own.
A trainer may define ``extra_state() -> dict`` and ``load_extra_state(state)`` for what it adds to a checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import checkpoint, config as cfgmod
from ..config import RunConfig, param
from ..envs import Normalizers, make_eval_env, make_vec_env, snapshot
from ..optim import FlatParameters, adam_step, make_adam
from ..policies import ACTIVATIONS, ActorCritic
from ..rollout import Rollout
from ..run import Progress
from .common import check_gradient, evaluate_policy, resolve_device, rng_state, seed_everything, set_rng_state


@dataclass(frozen=True, kw_only=True)
class RolloutConfig(RunConfig):
    """Settings of every trainer that steps environments, single- or multi-agent: N copies, rollout length, Adam,
    discounting, the MLP networks and the stop rule (each trainer's config adds its own, or changes a default)."""

    num_envs: int = param(8, "N, environments stepped in parallel", low=1)
    stop_return: float | None = param(
        None, "stop early once the mean return of the last 20 training episodes reaches this (None: never)")
    num_steps: int = param(128, "T, steps per env per rollout; the batch is num_envs × num_steps", low=1)
    lr: float = param(3e-4, "α, Adam learning rate", low=0.0, low_open=True)
    anneal_lr: bool = param(True, "anneal α linearly to 0 over the run")
    adam_eps: float = param(1e-5, "Adam's ε", low=0.0, low_open=True)
    gamma: float = param(0.99, "γ, discount factor", low=0.0, high=1.0, low_open=True)
    gae_lambda: float = param(0.95, "λ, GAE bias-variance trade-off", low=0.0, high=1.0)
    ent_coef: float = param(0.0, "c, entropy bonus coefficient (J^CLIP+ and the PG losses)", low=0.0)
    vf_coef: float = param(0.5, "value-loss coefficient", low=0.0)
    max_grad_norm: float = param(0.5, "global gradient-norm clip (0: off)", low=0.0)
    norm_adv: bool = param(True, "normalise advantages per minibatch (zero mean, unit std)")
    hidden_sizes: tuple[int, ...] = param((64, 64), "hidden layer widths of the MLPs")
    activation: str = param("tanh", "hidden activation", choices=tuple(ACTIVATIONS))
    log_std_init: float = param(0.0, "initial log σ of the Gaussian policy (Box actions)")
    ortho_init: bool = param(True, "orthogonal initialisation (gain √2 hidden, 0.01 actor head, 1 critic head)")

    @property
    def batch_size(self) -> int:
        """num_envs × num_steps samples (rows) per rollout."""
        return self.num_envs * self.num_steps


@dataclass(frozen=True, kw_only=True)
class ActorCriticConfig(RolloutConfig):
    """Settings of every single-agent actor-critic trainer on gymnasium envs: how the vector env is stepped, its
    normalisation wrappers and the actor-critic's trunk."""

    vectorization: str = param(
        "auto",
        "how the N envs are stepped: 'auto' uses the env's native vectorised version where gymnasium has one, "
        "else 'sync'; 'async' runs each env in its own process (for expensive envs)",
        choices=("auto", "sync", "async", "vector_entry_point"),
    )
    norm_obs: bool = param(False, "normalise observations by running statistics (gymnasium's wrapper)")
    norm_reward: bool = param(False, "scale rewards by the std of a running discounted return (gymnasium's wrapper)")
    shared_trunk: bool = param(False, "actor and critic share one MLP trunk")


def build_config(cls: type[RunConfig], config: RunConfig | None, env: str | None,
                 overrides: dict[str, Any]) -> Any:
    """``config`` (or ``cls``'s defaults) with ``env`` and keyword overrides applied, validated strictly."""
    values = cfgmod.to_dict(config or cls())
    if env is not None:
        values["env"] = env
    values.update(overrides)
    return cfgmod.from_dict(cls, values)


def setup(agent: Any, config: Any, run_dir: str | Path | None, progress: bool | None) -> None:
    """Seed, build the actor-critic for the env's spaces, its flat parameters and Adam, and zero the counters."""
    cfg = agent.config = config
    agent.run_dir = Path(run_dir) if run_dir is not None else None
    agent.show_progress = progress
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.torch_threads)
    probe = make_eval_env(cfg.env, cfg.env_kwargs)
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()
    agent.policy = ActorCritic(obs_space, act_space, cfg.hidden_sizes, cfg.activation, cfg.shared_trunk,
                               cfg.log_std_init, cfg.ortho_init)
    agent.device = resolve_device(cfg.device, sum(p.numel() for p in agent.policy.parameters()))
    agent.policy.to(agent.device)
    agent.acting_rng = np.random.default_rng(cfg.seed)  # samples actions on the numpy acting path
    agent.flat = FlatParameters(agent.policy)  # one tensor for the grad clip and Adam; after .to(device)
    agent.optimizer = make_adam([agent.flat.param], cfg.lr, cfg.adam_eps)
    init_counters(agent)


def init_counters(agent: Any) -> None:
    """A fresh :class:`~proxrl.run.Progress` (counters, wall time, last-20 windows); no envs yet."""
    agent.progress = Progress()
    agent.normalizer_state = {}
    agent._rollout = None
    agent._norms = None
    agent._env_snapshot = None  # the envs' saved state, restored when a loaded agent starts its envs


def start_envs(agent: Any) -> Rollout:
    """The vector env (normalisers restored) and its rollout; a resumed run reseeds from its step count so it does
    not replay the episodes it began with."""
    cfg = agent.config
    step = agent.progress.global_step
    venv, agent._norms = make_vec_env(cfg.env, cfg.num_envs, cfg.seed + step, cfg.env_kwargs,
                                      cfg.vectorization, cfg.norm_obs, cfg.norm_reward, cfg.gamma)
    agent._norms.load_state(agent.normalizer_state)
    rollout = Rollout(venv, agent.policy, cfg.num_steps, agent.device, rng=agent.acting_rng)
    rollout.env_steps = step
    obs, _ = venv.reset(seed=cfg.seed + step)
    rollout.start(obs)
    saved, agent._env_snapshot = agent._env_snapshot, None
    if saved is not None and saved.get("num_envs") != cfg.num_envs:
        saved = {"venv": {"unsaved": [f"{saved.get('num_envs')} envs were saved, {cfg.num_envs} are asked for"]}}
    # exact resume: the envs where they were, or (state a checkpoint cannot hold) the fresh reset above, said once
    if saved is not None and snapshot.restore_or_reset(venv, saved["venv"], f"the {cfg.num_envs} {cfg.env} envs",
                                                       cfg.seed + step):
        rollout.obs = saved["obs"].numpy().copy()
        rollout.prev_done[:] = saved["prev_done"].numpy()
    return rollout


def rollout(agent: Any) -> Any:
    """The agent's rollout (or multi-agent collector), its envs started on first use."""
    if agent._rollout is None:
        agent._rollout = agent.start_envs()
    return agent._rollout


def env_state(agent: Any) -> dict[str, Any] | None:
    """The envs' state and the rollout's place in their episodes (for an exact resume), or None before any env."""
    rollout = agent._rollout
    if rollout is None:
        return agent._env_snapshot
    if not isinstance(rollout, Rollout):  # a multi-agent collector: its own attributes and its envs
        return {"collector": snapshot.snapshot(rollout)}
    return {"num_envs": rollout.venv.num_envs, "venv": snapshot.snapshot(rollout.venv),
            "obs": torch.from_numpy(np.array(rollout.obs)), "prev_done": torch.from_numpy(rollout.prev_done.copy())}


def anneal_lr(agent: Any, target: int) -> float:
    """Set Adam's learning rate to α, or with ``anneal_lr`` to α × the fraction of the ``target`` steps still to
    go; returns it."""
    cfg = agent.config
    lr = cfg.lr * (1.0 - agent.progress.global_step / target) if cfg.anneal_lr else cfg.lr
    for group in agent.optimizer.param_groups:
        group["lr"] = lr
    return lr


def gradient_step(agent: Any, loss: torch.Tensor) -> None:
    """Zero the flat gradient, backpropagate ``loss``, clip the global norm at ``max_grad_norm``, step Adam."""
    agent.flat.zero_grad()
    loss.backward()
    check_gradient(agent.global_step, agent.flat.clip_grad_norm_(agent.config.max_grad_norm))
    adam_step(agent.optimizer)


def save_checkpoint(agent: Any) -> Path:
    """``checkpoints/ckpt_<step>.pt``, keeping the newest ``keep_checkpoints``."""
    return checkpoint.save_periodic(agent.state_dict(), agent.run_dir / "checkpoints", agent.progress.global_step,
                                    agent.config.keep_checkpoints)


def summary(agent: Any, eval_episodes: int = 0) -> list[str]:
    """What the CLI prints when training ends: the counters, and a fresh evaluation of ``eval_episodes``."""
    p = agent.progress
    recent = list(p.recent_returns)
    lines = [f"done: {p.global_step:,} steps, {p.num_episodes:,} episodes; mean return of the last {len(recent)} "
             f"training episodes {sum(recent) / max(len(recent), 1):.1f}"]
    if eval_episodes > 0:
        r = agent.evaluate(eval_episodes)
        lines.append(f"evaluation ({eval_episodes} episodes, deterministic): mean return {r['mean_return']:.1f} "
                     f"± {r['std_return']:.1f}")
    return lines


def describe_evaluation(agent: Any, episodes: int = 20, deterministic: bool = True,
                        video_dir: str | Path | None = None, seed: int | None = None) -> list[str]:
    """``proxrl eval``: evaluate on fresh episodes and say how it went, one line each."""
    r = agent.evaluate(episodes, deterministic=deterministic, video_dir=video_dir, seed=seed)
    kind = "deterministic" if deterministic else "stochastic"
    lines = [f"{agent.algo} on {agent.config.env}: {episodes} episodes ({kind}): mean return {r['mean_return']:.2f} "
             f"± {r['std_return']:.2f}, mean length {r['mean_length']:.1f}"]
    return lines + ([f"videos in {video_dir}"] if video_dir else [])


def predict(agent: Any, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
    """Env-ready actions (Box actions clipped to bounds) for a batch of observations ``[B, *obs_shape]``,
    already normalised if the run used ``norm_obs``."""
    return agent.policy.env_actions(torch.as_tensor(np.asarray(obs), device=agent.device), deterministic)


def evaluate(agent: Any, episodes: int = 10, deterministic: bool = True, video_dir: str | Path | None = None,
             seed: int | None = None) -> dict[str, Any]:
    """Mean and spread of the return over ``episodes`` fresh episodes (optionally recorded as video)."""
    cfg = agent.config
    stats = normalizer_state(agent)
    agent.policy.eval()
    return evaluate_policy(agent.policy, cfg.env, cfg.env_kwargs, stats.get("obs"), episodes, deterministic,
                           seed=cfg.seed + 10_000 if seed is None else seed, video_dir=video_dir, device=agent.device)


def normalizer_state(agent: Any) -> dict[str, Any]:
    """The live envs' normalisation statistics, or the loaded ones before any env was built."""
    norms: Normalizers | None = agent._norms
    return norms.state() if norms is not None else agent.normalizer_state


def state_dict(agent: Any) -> dict[str, Any]:
    """Everything needed to evaluate or resume: weights, optimiser, counters, RNG states, config (+ extras)."""
    state = {
        "format_version": checkpoint.FORMAT_VERSION,
        "algo": agent.algo,
        "config": cfgmod.dump(agent.config),
        "policy": agent.policy.state_dict(),
        "optimizer": agent.optimizer.state_dict(),
        **agent.progress.state_dict(),
        "normalizers": normalizer_state(agent),
        "rng": rng_state(),
        "acting_rng": json.dumps(agent.acting_rng.bit_generator.state),
        "envs": env_state(agent),
    }
    if hasattr(agent, "extra_state"):
        state.update(agent.extra_state())
    return state


def save(agent: Any, path: str | Path) -> Path:
    """Write a checkpoint atomically to ``path``."""
    return checkpoint.atomic_save(agent.state_dict(), path)


def load(cls: type, path: str | Path, *, run_dir: str | Path | None = None, progress: bool | None = None,
         **overrides: Any) -> Any:
    """Rebuild an agent from a checkpoint (a file, or a run directory's latest); training can continue."""
    path = Path(path)
    if path.is_dir():
        path = checkpoint.latest(path)
    state = checkpoint.load(path, algo=cls.algo)
    values = cfgmod.read_yaml_text(state["config"])
    values.update(overrides)
    agent = cls(config=cfgmod.from_dict(cls.config_class, values), run_dir=run_dir, progress=progress)
    try:
        agent.policy.load_state_dict(state["policy"])
    except RuntimeError as e:
        first_line = str(e).splitlines()[0]
        raise checkpoint.CheckpointError(f"{path}: weights do not fit this policy: {first_line}") from None
    agent.optimizer.load_state_dict(state["optimizer"])
    agent.progress.load_state_dict(state)
    agent.normalizer_state = state["normalizers"]
    set_rng_state(state["rng"])
    agent.acting_rng.bit_generator.state = json.loads(state["acting_rng"])
    agent._env_snapshot = state.get("envs")
    if hasattr(agent, "load_extra_state"):
        agent.load_extra_state(state)
    return agent
