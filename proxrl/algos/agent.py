"""What every trainer that steps environments shares (PPO, PG, OffPolicyPG, MultiAgentPPO): their configs' common
settings (:class:`RolloutConfig`, :class:`ActorCriticConfig`) and their base class, :class:`EnvTrainer`, which holds
the shared behaviour as methods (issue 32: one concrete, one-level base class per trainer family, which a type
checker sees, in place of free functions bound by alias lines).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar, cast

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector

from .. import checkpoint, config as cfgmod, presets
from ..config import ConfigError, RunConfig
from ..envs import OBS_CLIP, Normalizers, dict_space_of, make_eval_env, resolve_env_id, snapshot
from ..envs.atari import EVAL_MAX_STEPS as ATARI_EVAL_MAX_STEPS
from ..envs.atari import is_atari
from ..envs.preprocessing import badly_scaled, describe_preprocessing
from ..fast.flat_adam import FlatParameters, adam_step
from ..optim import make_adam
from ..policies import ActorCritic
from ..policies.describe import describe_network
from ..policies.encoders import DictEncoder, register_class
from ..marl.collector import MultiAgentCollector
from ..rollout import Batch, Rollout
from ..runners.group import RunnerGroup
from ..runners.ray_group import RayRunnerGroup
from ..runners.runner import EnvRunner, build_policy, make_envs
from ..checkpoint import Migration
from ..run import Progress
from ..env_config import ActorCriticConfig as ActorCriticConfig
from ..env_config import RolloutConfig as RolloutConfig
from . import common
from ..devices import resolve_device
from ..seeding import rng_state, set_rng_state
from .common import check_gradient, evaluate_policy

T = TypeVar("T", bound="EnvTrainer")


def build_config(cls: type[RunConfig], config: RunConfig | None, env: str | None, overrides: dict[str, Any]) -> Any:
    """``config`` (or ``cls``'s defaults) with ``env`` and keyword overrides applied, validated strictly. A
    ``features_extractor`` given as a class is kept by its ``module:Class`` path (the config holds plain values)."""
    extractor = overrides.get("features_extractor")
    if isinstance(extractor, type):
        overrides = {**overrides, "features_extractor": register_class(extractor)}
    return cfgmod.resolve(cls, base=config, overrides={**({"env": env} if env is not None else {}), **overrides})


def decide_normalization(config: Any) -> Any:
    """``config`` with ``norm_obs`` / ``norm_reward`` left unset (None) decided by the env's observations: on for a
    vector of floats that is unbounded or badly scaled (:func:`~proxrl.envs.preprocessing.badly_scaled`), else off;
    ``config`` itself when both are set."""
    if config.norm_obs is not None and config.norm_reward is not None:
        return config
    probe = make_eval_env(config.env, config.env_kwargs)
    on = badly_scaled(probe.observation_space) and dict_space_of(probe) is None  # a Dict's flat row: its encoders'
    probe.close()
    return dataclasses.replace(
        config,
        norm_obs=on if config.norm_obs is None else config.norm_obs,
        norm_reward=on if config.norm_reward is None else config.norm_reward,
    )


Collector = Rollout | MultiAgentCollector | RunnerGroup  # what steps a trainer's envs: here, or on Ray runners


@dataclass
class EnvSlot:
    """A trainer's envs: the rollout (or multi-agent collector) once started, its normalisers, and what a loaded
    checkpoint puts back when they start (normalisation statistics, the envs' saved state)."""

    rollout: Collector | None = None
    norms: Normalizers | None = None
    saved_normalizers: dict[str, Any] = field(default_factory=dict)
    saved_envs: dict[str, Any] | None = None
    last_group: RunnerGroup | None = None  # the runner group close() stopped: its health for the summary

    def runner_lines(self) -> list[str]:
        """The runners' health for the final summary (``runners: ray``), else nothing."""
        group = self.rollout if isinstance(self.rollout, RunnerGroup) else self.last_group
        return [] if group is None else [group.health_line()]


class EnvTrainer:
    """The base of every trainer that steps environments (PPO, PG/REINFORCE, OffPolicyPG, MultiAgentPPO): what they
    share, as methods (envs and runners, Adam steps, checkpoints, evaluation, predict, the summary). A trainer
    derives from it, one level deep, builds its parts in ``__init__`` (single-agent ones call :meth:`_setup`) and
    adds its config, its update and ``learn()``; its envs live in an :class:`EnvSlot`, and ``extra_state`` /
    ``load_extra_state`` hold what it adds to a checkpoint."""

    algo: ClassVar[str]
    config_class: ClassVar[type[RunConfig]]
    final_checkpoint: ClassVar[str] = "model.pt"
    sample_unit: ClassVar[str] = "env steps"
    migrations: ClassVar[Mapping[int, Migration]] = {}
    bench_steps: ClassVar[int]
    data_parallel: ClassVar[bool] = False  # scales out with Ray runners in one process, not with torchrun
    config: RolloutConfig
    progress: Progress
    run_dir: Path | None
    show_progress: bool | None
    policy: torch.nn.Module
    device: torch.device
    flats: dict[str, FlatParameters]  # each network's parameters as one tensor …
    optimizers: dict[str, torch.optim.Optimizer]  # … and its Adam, under the same name
    acting_rng: np.random.Generator | None  # the numpy acting path's sampler (None: torch samples actions)
    envs: EnvSlot
    normalization_decided: bool = False  # norm_obs / norm_reward were unset and decided from the env (_setup)

    @property
    def global_step(self) -> int:
        """Env steps trained so far (summed over the N envs)."""
        return self.progress.global_step

    @property
    def method(self) -> str:
        """The name the run is shown under: ``algo``."""
        return self.algo

    def saves_together(self) -> bool:
        """One process saves: an env trainer is never data-parallel."""
        return False

    def _begin(self, config: Any, run_dir: str | Path | None, progress: bool | None) -> None:
        """What every env trainer does first: :func:`.common.begin` (config, run directory, seeds, threads, zero
        counters), and no envs yet."""
        common.begin(self, config, run_dir, progress)
        self.envs = EnvSlot()

    def flat_adams(self, groups: dict[str, list[torch.nn.Parameter]]) -> None:
        """One flat parameter tensor and one Adam per named group of parameters (on their device already)."""
        self.flats = {name: FlatParameters(params) for name, params in groups.items()}
        self.optimizers = {
            name: make_adam([flat.param], self.config.lr, self.config.adam_eps) for name, flat in self.flats.items()
        }

    def _setup(self, config: Any, run_dir: str | Path | None, progress: bool | None) -> None:
        """:meth:`_begin` with ``norm_obs`` / ``norm_reward`` decided where unset, then the actor-critic for the
        env's spaces, its flat parameters and Adam."""
        decided = decide_normalization(config)
        self.normalization_decided = decided is not config
        self._begin(decided, run_dir, progress)
        config = decided
        self.policy = build_policy(config, warn=True)
        convolutional = any(isinstance(m, torch.nn.Conv2d) for m in self.policy.modules())
        self.device = resolve_device(config.device, sum(p.numel() for p in self.policy.parameters()), convolutional)
        self.policy.to(self.device)
        self.acting_rng = np.random.default_rng(config.seed)  # samples actions on the numpy acting path
        self.flat_adams({"policy": list(self.policy.parameters())})

    def start_envs(self) -> Collector:
        """The vector env (normalisers restored) and its rollout, or with ``runners: ray`` the group of runner actors;
        a resumed run reseeds from its step count so it does not replay the episodes it began with."""
        cfg = self.config
        if cfg.runners == "ray":
            return self.start_runners()
        assert isinstance(cfg, ActorCriticConfig)  # a multi-agent trainer starts its own collector
        step = self.progress.global_step
        venv, norms = make_envs(cfg, cfg.num_envs, cfg.seed + step)
        norms.load_state(self.envs.saved_normalizers)
        self.envs.norms = norms
        policy = cast(ActorCritic, self.policy)
        rollout = Rollout(venv, policy, cfg.num_steps, self.device, self.acting_rng, cfg.sde_sample_freq)
        rollout.env_steps = step
        obs, _ = venv.reset(seed=cfg.seed + step)
        rollout.start(obs)
        saved, self.envs.saved_envs = self.envs.saved_envs, None
        if saved is not None and "layout" in saved:
            saved = {"venv": {"unsaved": [f"they were stepped by Ray runners ({saved['layout']})"]}}
        elif saved is not None and saved.get("num_envs") != cfg.num_envs:
            saved = {"venv": {"unsaved": [f"{saved.get('num_envs')} envs were saved, {cfg.num_envs} are asked for"]}}
        # exact resume: the envs where they were, or (state a checkpoint cannot hold) the fresh reset above, said once
        if saved is not None and snapshot.restore_or_reset(
            venv, saved["venv"], f"the {cfg.num_envs} {cfg.env} envs", cfg.seed + step
        ):
            rollout.obs = saved["obs"].numpy().copy()
            rollout.prev_done[:] = saved["prev_done"].numpy()
            if "prev_valid" in saved:  # (checkpoints before 2026-12-03 lack it: their first row starts episodes)
                rollout.prev_valid[:] = saved["prev_valid"].numpy()
            if rollout.recurrent and "recurrent_state" in saved:  # the LSTM's memory of the episodes under way
                rollout.state = tuple(x.to(self.device) for x in saved["recurrent_state"])
        return rollout

    def start_runners(
        self, runner_class: type = EnvRunner, batch_class: type = Batch, numpy_weights: bool = True
    ) -> RunnerGroup:
        """``num_runners`` Ray actors of ``num_envs / num_runners`` envs each (``runner_class``: gymnasium envs, or
        PettingZoo copies), acting with the learner's weights, sent once per iteration (the flat parameters of the
        numpy acting path, or every network's as one vector), and with its acting generator where it has one."""
        if numpy_weights:
            flat = self.flats["policy"].param
            weights = lambda: flat.detach().cpu().numpy()  # noqa: E731
        else:
            weights = lambda: parameters_to_vector(self.policy.parameters()).detach().cpu().numpy()  # noqa: E731
        group = RayRunnerGroup(
            self.config,
            weights,
            None if self.config.runner_mode == "async" else self.acting_rng,  # async: each runner its own stream
            self.device,
            self.global_step,
            self.envs.saved_normalizers,
            runner_class=runner_class,
            batch_class=batch_class,
        )
        saved, self.envs.saved_envs = self.envs.saved_envs, None
        if saved is not None:
            group.load_state(saved)
        return group

    def rollout(self) -> Any:
        """The agent's rollout (or multi-agent collector), its envs started on first use (Any: each trainer knows
        which :data:`Collector` its ``start_envs`` returns)."""
        r = self.envs.rollout
        if r is None or (isinstance(r, RunnerGroup) and r.closed):  # a group that lost every runner stopped itself
            self.envs.rollout = self.start_envs()
        return self.envs.rollout

    def close(self) -> None:
        """Close the envs (and stop the runner actors with ``runners: ray``); the next ``learn`` starts them again,
        from a clean seeded reset."""
        r = self.envs.rollout
        if r is not None:
            r.close()
            self.envs.rollout = None
            self.envs.last_group = r if isinstance(r, RunnerGroup) else None

    def env_state(self) -> dict[str, Any] | None:
        """The envs' state and the rollout's place in their episodes (for an exact resume), or None before any env."""
        r = self.envs.rollout
        if r is None:
            return self.envs.saved_envs
        if isinstance(r, RunnerGroup):
            return r.state()
        assert isinstance(r, Rollout)  # MultiAgentPPO.env_state saves its collector
        return {
            "num_envs": r.venv.num_envs,
            "venv": snapshot.snapshot(r.venv),
            "obs": torch.from_numpy(np.array(r.obs)),
            "prev_done": torch.from_numpy(r.prev_done.copy()),
            "prev_valid": torch.from_numpy(r.prev_valid.copy()),
            **({"recurrent_state": [x.detach().cpu().clone() for x in r.state]} if r.state is not None else {}),
        }

    def extra_state(self) -> dict[str, Any]:
        """What this trainer adds to a checkpoint (nothing, unless it says otherwise)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`."""

    def anneal_lr(self, target: int) -> float:
        """Set Adam's learning rate to α, or with ``anneal_lr`` to α × the fraction of the ``target`` steps still to
        go, for every network; returns it."""
        cfg = self.config
        lr = float(cfg.lr * (1.0 - self.progress.global_step / target) if cfg.anneal_lr else cfg.lr)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        return lr

    def gradient_step(self, loss: torch.Tensor, networks: tuple[str, ...] = ("policy",)) -> None:
        """Zero the flat gradients of ``networks``, backpropagate ``loss``, clip each one's norm at
        ``max_grad_norm`` and step its Adam."""
        for name in networks:
            self.flats[name].zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        for name in networks:
            check_gradient(
                self.global_step,
                self.flats[name].clip_grad_norm_(self.config.max_grad_norm),
                "gradient" if name == "policy" else f"gradient of {name}",
            )
            adam_step(self.optimizers[name])

    def save_checkpoint(self) -> Path:
        """``checkpoints/ckpt_<step>.pt``, keeping the newest ``keep_checkpoints``."""
        assert self.run_dir is not None
        return checkpoint.save_periodic(
            self.state_dict(), self.run_dir / "checkpoints", self.progress.global_step, self.config.keep_checkpoints
        )

    def summary(self, eval_episodes: int = 0) -> list[str]:
        """What the CLI prints when training ends: the counters, and a fresh evaluation of ``eval_episodes``."""
        lines = [self.progress.done_line(), *self.envs.runner_lines()]
        if eval_episodes > 0:
            r = self.evaluate(eval_episodes)
            lines.append(
                f"evaluation ({eval_episodes} episodes, deterministic): mean return {r['mean_return']:.1f} "
                f"± {r['std_return']:.1f}, mean length {r['mean_length']:,.0f} agent steps{self._capped(r)}"
            )
        return lines

    def _capped(self, result: dict[str, Any]) -> str:
        """How many evaluation episodes the step cap cut short, as a clause ('' when none)."""
        n = result["capped"]
        return f"; {n} cut at the cap of {self.eval_step_cap():,} steps (eval_max_steps)" if n else ""

    def describe(self) -> list[str]:
        """What ``proxrl train`` says before training: the network built and the env's preprocessing."""
        cfg = self.config
        lines = [describe_network(self.policy, cfg.activation)]
        if isinstance(cfg, ActorCriticConfig):
            norm_obs, norm_reward = bool(cfg.norm_obs), bool(cfg.norm_reward)
            lines.append(describe_preprocessing(cfg.env, norm_obs, norm_reward, self.normalization_decided))
        return lines

    def describe_evaluation(
        self,
        episodes: int = 20,
        deterministic: bool = True,
        video_dir: str | Path | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """``proxrl eval``: evaluate on fresh episodes and say how it went, one line each."""
        r = self.evaluate(episodes, deterministic=deterministic, video_dir=video_dir, seed=seed)
        kind = "deterministic" if deterministic else "stochastic"
        lines = [
            f"{self.algo} on {self.config.env}: {episodes} episodes ({kind}): mean return {r['mean_return']:.2f} "
            f"± {r['std_return']:.2f}, mean length {r['mean_length']:.1f} agent steps{self._capped(r)}"
        ]
        return lines + ([f"videos in {video_dir}"] if video_dir else [])

    def predict(self, obs: Any, deterministic: bool = True, state: Any = None) -> Any:
        """Env-ready actions (Box actions clipped to bounds) for one observation (as ``env.reset()`` and ``env.step``
        return it: then one action) or a batch ``[B, *obs_shape]`` (B actions), as SB3's ``predict`` takes both (a Dict
        space's observations as the env's flat rows, or as dicts: one, or each key ``[B, *shape]``). With
        ``norm_obs`` the observations are normalised by the run's statistics, as in :meth:`evaluate`. A recurrent
        policy returns ``(actions, state)``: pass the state back with the next observation (None: an episode's
        start), as SB3-contrib's RecurrentPPO."""
        policy = cast(ActorCritic, self.policy)
        if isinstance(obs, dict) and isinstance(policy.encoder, DictEncoder):  # the env's flat rows come from dicts
            obs = policy.encoder.layout.flatten_batch(obs)
        obs = np.asarray(obs)
        shape = policy.observation_space.shape or ()
        single = obs.shape == tuple(shape)
        if not single and obs.shape[1:] != tuple(shape):
            raise ConfigError(
                f"predict takes one observation of shape {tuple(shape)} or a batch [B, *{tuple(shape)}], "
                f"got {obs.shape}"
            )
        stats = self.normalizer_state().get("obs")
        if stats is not None:
            # gymnasium's NormalizeObservation (ε = 1e-8) with frozen statistics, then the clip: make_eval_env's
            # transform
            scaled = (obs - np.asarray(stats["mean"])) / np.sqrt(np.asarray(stats["var"]) + 1e-8)
            obs = np.clip(scaled, -OBS_CLIP, OBS_CLIP)
        batch = torch.as_tensor(obs[None] if single else obs, device=self.device)
        if policy.core is not None:
            state = policy.initial_state(batch.shape[0], self.device) if state is None else state
            actions, state = policy.env_actions_recurrent(batch, state, deterministic)
            return (actions[0] if single else actions), state
        actions = policy.env_actions(batch, deterministic)
        return actions[0] if single else actions

    def evaluate(
        self,
        episodes: int = 10,
        deterministic: bool = True,
        video_dir: str | Path | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Mean and spread of the return over ``episodes`` fresh episodes (optionally recorded as video), each cut at
        ``eval_max_steps`` agent steps (:meth:`eval_step_cap`). With a progress display (``progress=True``, or a
        terminal) a line on stderr as each episode ends."""
        if episodes < 1:
            raise ConfigError(f"evaluation needs at least 1 episode, got {episodes}")
        cfg = self.config
        assert isinstance(cfg, ActorCriticConfig)  # (a multi-agent trainer evaluates its own way)
        stats = self.normalizer_state()
        cap = self.eval_step_cap()
        show = sys.stderr.isatty() if self.show_progress is None else self.show_progress

        def report(i: int, ret: float, length: int, capped: bool) -> None:
            cut = f" (cut at the cap of {cap:,})" if capped else ""
            print(
                f"evaluation episode {i + 1}/{episodes}: return {ret:.1f}, {length:,} agent steps{cut}", file=sys.stderr
            )

        self.policy.eval()
        return evaluate_policy(
            self.policy,
            cfg.env,
            cfg.env_kwargs,
            stats.get("obs"),
            episodes,
            deterministic,
            seed=cfg.seed + 10_000 if seed is None else seed,
            video_dir=video_dir,
            device=self.device,
            max_steps=cap,
            on_episode=report if show else None,
            obs_keys=cfg.obs_keys,
            hide_obs=cfg.hide_obs,
        )

    def eval_step_cap(self) -> int | None:
        """The cap on agent steps per evaluation episode: ``eval_max_steps``, else Atari's 27,000 (108,000 frames at
        frame skip 4: the ALE's own limit, made explicit in agent steps), else None (the env's own limit)."""
        cfg = self.config
        if isinstance(cfg, ActorCriticConfig) and cfg.eval_max_steps is not None:
            return int(cfg.eval_max_steps)
        return ATARI_EVAL_MAX_STEPS if is_atari(resolve_env_id(cfg.env)) else None

    def normalizer_state(self) -> dict[str, Any]:
        """The live envs' normalisation statistics, or the loaded ones before any env was built."""
        norms, r = self.envs.norms, self.envs.rollout
        if isinstance(r, RunnerGroup):
            return r.normalizers
        return norms.state() if norms is not None else self.envs.saved_normalizers

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to evaluate or resume: weights, optimisers, counters, RNG states, config (+ extras)."""
        return {
            "format_version": checkpoint.FORMAT_VERSION,
            "algo": self.algo,
            "config": cfgmod.dump(self.config),
            "policy": self.policy.state_dict(),
            "optimizer": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            **self.progress.state_dict(),
            "normalizers": self.normalizer_state(),
            "rng": rng_state(),
            "acting_rng": None if self.acting_rng is None else json.dumps(self.acting_rng.bit_generator.state),
            "envs": self.env_state(),
            **self.extra_state(),
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically to ``path``."""
        return checkpoint.atomic_save(self.state_dict(), path)

    @classmethod
    def from_preset(
        cls: type[T], env: str, *, run_dir: str | Path | None = None, progress: bool | None = None, **overrides: Any
    ) -> T:
        """A trainer on ``env`` with its zoo preset (``proxrl/zoo/<algo>/``, listed by ``proxrl presets``) under the
        keyword ``overrides``: ``PPO.from_preset("LunarLander-v3", seed=1)``, as ``proxrl train ppo --env
        LunarLander-v3 --seed 1``. (``PPO("LunarLander-v3")`` keeps proxrl's defaults.)"""
        found = presets.find(cls.algo, env)
        if found is None:
            raise ConfigError(f"no {cls.algo} preset for {env}; `proxrl presets {cls.algo}` lists them")
        base = cfgmod.from_dict(cls.config_class, found.values_for(env))
        config = build_config(cls.config_class, base, env, overrides)  # defaults < preset < overrides
        build: Callable[..., T] = cls  # every trainer's constructor takes these keywords
        return build(config=config, run_dir=run_dir, progress=progress)

    @classmethod
    def load(
        cls: type[T],
        path: str | Path,
        *,
        run_dir: str | Path | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> T:
        """Rebuild an agent from a checkpoint (a file, or a run directory's latest); training can continue."""
        path, state = checkpoint.load_newest(path, algo=cls.algo, migrations=cls.migrations)
        config = cfgmod.resolve(cls.config_class, base=cfgmod.read_yaml_text(state["config"]), overrides=overrides)
        build: Callable[..., T] = cls  # every trainer's constructor takes these keywords
        agent = build(config=config, run_dir=run_dir, progress=progress)
        try:
            agent.policy.load_state_dict(state["policy"])
        except RuntimeError as e:
            first_line = str(e).splitlines()[0]
            raise checkpoint.CheckpointError(f"{path}: weights do not fit this policy: {first_line}") from None
        for name, optimizer in agent.optimizers.items():
            optimizer.load_state_dict(state["optimizer"][name])
        agent.progress.load_state_dict(state)
        agent.envs.saved_normalizers = state["normalizers"]
        set_rng_state(state["rng"])
        if agent.acting_rng is not None:
            agent.acting_rng.bit_generator.state = json.loads(state["acting_rng"])
        agent.envs.saved_envs = state.get("envs")
        agent.load_extra_state(state)
        return agent


def nest_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint migration 3 → 4 of a single-agent trainer: its one Adam's state moves under the name of its
    network (``"policy"``), as every trainer now stores one Adam per named network."""
    state["optimizer"] = {"policy": state["optimizer"]}
    return state
