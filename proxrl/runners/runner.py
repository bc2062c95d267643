"""One runner: M of the run's N·M environments, a CPU copy of the policy and a :class:`~proxrl.rollout.Rollout`
over them, returning a whole rollout fragment per :meth:`EnvRunner.sample` call. The same class runs in this
process (tests, and the group's own checks) or as a Ray actor (:mod:`.ray_group`).

Runner r steps the run's envs g = r·M … r·M + M − 1: it seeds them as the local vector env would (env g with
seed + g), and acts with the run's one acting generator, drawing every step's numbers for all N·M envs and using
its own M rows (:class:`SliceOfDraws`). So with ``vectorization: sync`` (gymnasium's native vector envs draw every
env's state from one generator), the numpy acting path and M ≥ 2 (a one-row matrix product may round differently
from the same row inside a larger one), N runners × M envs produce the columns the local runner's N·M envs do,
bit for bit.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, fields
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import torch

from ..envs import Normalizers, dict_space_of, dropped_keys, make_eval_env, make_vec_env, snapshot
from ..fast.flat_adam import FlatParameters
from ..devices import limit_threads
from ..errors import ConfigError, RunWarning
from ..policies import ActorCritic, warn_if_flattened_image
from ..policies.encoders import build_encoder, set_cnn_precision
from ..rollout import Batch, Rollout

if TYPE_CHECKING:  # the configs' module imports the runners
    from ..env_config import ActorCriticConfig, RolloutConfig

T = TypeVar("T")


def build_policy(config: ActorCriticConfig, warn: bool = False) -> ActorCritic:
    """The actor-critic a single-agent env trainer's ``config`` asks for, on the CPU, sized for its env, with the
    observation encoder its ``policy`` names (``warn``: say when images go flattened into an MLP)."""
    probe = make_eval_env(config.env, config.env_kwargs, obs_keys=config.obs_keys, hide_obs=config.hide_obs)
    obs_space, act_space, dict_space = probe.observation_space, probe.action_space, dict_space_of(probe)
    if warn:
        warn_if_keys_dropped(probe)
    probe.close()
    encoder = build_encoder(
        obs_space,
        config.policy,
        config.image_channels,
        config.features_extractor,
        config.features_extractor_kwargs,
        dict_space,
    )
    if warn:
        warn_if_flattened_image(obs_space, encoder)
    if encoder is not None and config.norm_obs:
        raise ConfigError(
            f"norm_obs=true normalises raw observations, which an encoder ({type(encoder).__name__}) does not "
            "expect (images are scaled by 1/255): set norm_obs=false"
        )
    policy = ActorCritic(
        obs_space,
        act_space,
        config.hidden_sizes,
        config.activation,
        config.shared_trunk,
        config.log_std_init,
        config.ortho_init,
        encoder,
        config.lstm_hidden_size if config.recurrent == "lstm" else None,
        config.use_sde,
        config.sde_learn_features,
    )
    set_cnn_precision(policy, config.cnn_precision)
    return policy


def make_envs(config: ActorCriticConfig, num_envs: int, seed: int) -> tuple[Any, Normalizers]:
    """The seeded vector env of ``num_envs`` envs a single-agent env trainer's ``config`` asks for
    (:func:`~proxrl.envs.make_vec_env` with its vectorisation, normalisation and observation settings)."""
    c = config
    return make_vec_env(
        c.env,
        num_envs,
        seed,
        c.env_kwargs,
        c.vectorization,
        bool(c.norm_obs),  # decided at the learner's construction (algos.agent.decide_normalization): never None here
        bool(c.norm_reward),
        c.gamma,
        obs_keys=c.obs_keys,
        hide_obs=c.hide_obs,
    )


def warn_if_keys_dropped(env: Any) -> None:
    """Say, once at construction, which keys of a Dict observation the policy will not see and why (a Text key such
    as MiniGrid's ``mission``: no encoder takes its space), and how to keep or name them."""
    dropped = dropped_keys(env)
    if dropped:
        keys = ", ".join(f"'{k}' ({space})" for k, space in dropped.items())
        space = dict_space_of(env)
        kept = list(space.spaces) if space is not None else []
        one = len(dropped) == 1
        warnings.warn(
            f"the Dict observation's {'key' if one else 'keys'} {keys} {'is' if one else 'are'} dropped: no encoder "
            f"takes {'its' if one else 'their'} space (supported: Box, Discrete, MultiBinary); the policy sees "
            f"{kept}. To use it, encode it as a Box in your own wrapper (an env registered by 'module:EnvId'); "
            f"obs_keys={kept} names the kept keys and silences this",
            RunWarning,
            stacklevel=3,
        )


def node_id() -> str | None:
    """The Ray node of this process (None outside Ray)."""
    try:
        import ray
    except ImportError:
        return None
    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else None


class SliceOfDraws:
    """The run's acting generator as one runner sees it: every draw is made for all ``total`` envs (as the local
    runner makes it) and rows ``first … first + count − 1`` are returned. Drawing N·M numbers where M are used
    costs well under a microsecond per step; it keeps every runner's stream, and the learner's copy, identical."""

    def __init__(self, generator: np.random.Generator, total: int, first: int, count: int) -> None:
        self.generator, self.total, self.rows = generator, total, slice(first, first + count)

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        """``Generator.random`` of ``shape`` (its first axis: this runner's envs)."""
        return self.generator.random((self.total, *shape[1:]))[self.rows]

    def standard_normal(
        self, shape: tuple[int, ...], dtype: type[np.float32] | type[np.float64] = np.float64
    ) -> np.ndarray:
        """``Generator.standard_normal`` of ``shape`` (its first axis: this runner's envs)."""
        return self.generator.standard_normal((self.total, *shape[1:]), dtype=dtype)[self.rows]


@dataclass
class Sync:
    """What the learner sends with every ``sample`` call (the weights travel beside it, by object reference):
    the weights' version, the acting generator's state, the run's env-step count (a runner that starts, or
    restarts, seeds its envs from it as a resumed local run does) and whether the rollout is episodic."""

    version: int
    acting_rng: Mapping[str, Any] | None  # None: the runner samples with torch (the multi-agent policies)
    global_step: int
    episodic: bool = False
    normalizers: dict[str, Any] = field(default_factory=dict)  # the run's statistics ({}: none yet)


@dataclass
class Fragment:
    """One runner's rollout: the :class:`~proxrl.rollout.Batch` fields over its M columns (``values`` has T + 1
    rows), the finished episodes with the (row, env) where each ended, the env steps taken, the observation
    the next rollout starts from, the acting generator's state after it, and the weights version it acted with."""

    index: int
    version: int
    arrays: dict[str, np.ndarray | None]
    returns: list[float]
    lengths: list[int]
    ended_at: list[tuple[int, int]] | None  # (rollout row, env index within the runner); None: not recorded
    steps_taken: int
    obs: np.ndarray
    acting_rng: Mapping[str, Any] | None
    resume_problem: str | None = None  # why a loaded env state could not be put back (its envs reset instead)
    normalizers: tuple[dict[str, Any], dict[str, Any]] | None = None  # its statistics before and after the rollout
    agent_returns: list[list[float]] | None = None  # multi-agent: each finished episode's return per agent
    pid: int = field(default_factory=os.getpid)


SEED_STRIDE = 1_000_003  # runner r's streams start this far apart per run seed (no two runners share one)


class Runner(Protocol):
    """What a runner group calls on its runners (:class:`EnvRunner`, ``marl_runner.MultiAgentRunner``), in this
    process or as Ray actors."""

    def __init__(self, config: RolloutConfig, index: int) -> None: ...

    def sample(self, weights: np.ndarray, sync: Sync) -> Fragment:
        """One rollout fragment acted with ``weights``."""
        ...

    def state(self) -> dict[str, Any] | None:
        """Its envs' state for an exact resume (None before its first sample)."""
        ...

    def load_state(self, state: dict[str, Any] | None) -> None:
        """Put ``state()`` back when its envs start."""
        ...

    def pid(self) -> int:
        """The process it lives in."""
        ...

    def node(self) -> str | None:
        """The Ray node it lives on (None outside Ray)."""
        ...

    def close(self) -> None:
        """Close its envs."""
        ...


class RunnerBase:
    """What every runner shares: its place in the group and its share of the envs, one core, the version of the
    weights it holds, a torch stream of its own, and a checkpoint's state of its envs waiting for them to start."""

    def __init__(self, config: RolloutConfig, index: int) -> None:
        limit_threads(1)  # a runner steps envs; its one core is the unit Ray schedules
        self.config, self.index = config, index
        self.num_envs = config.num_envs // config.num_runners
        self.version = -1
        # where the policy samples with torch (no numpy acting path): a stream per runner, seeded from (seed,
        # index), so a layout of runners is reproducible (not equal to the local runner)
        self.torch_rng = torch.Generator().manual_seed(config.seed * SEED_STRIDE + index)
        self.saved: dict[str, Any] | None = None  # a checkpoint's state of its envs, put back when they start
        self.resume_problem: str | None = None  # why it could not be put back (reported with the next fragment)

    def pid(self) -> int:
        """The process this runner lives in (tests kill it)."""
        return os.getpid()

    def node(self) -> str | None:
        """The Ray node this runner lives on (None outside Ray): where SPREAD placed it."""
        return node_id()

    def load_state(self, state: dict[str, Any] | None) -> None:
        """Put ``state()`` back when its envs start (before its first sample)."""
        self.saved = state

    def _in_own_torch_stream(self, collect: Callable[[], T]) -> T:
        """``collect()`` sampling from this runner's torch stream (the process's global one is left as it was)."""
        with torch.random.fork_rng():
            torch.set_rng_state(self.torch_rng.get_state())
            out = collect()
            self.torch_rng.set_state(torch.get_rng_state())
        return out

    def _take_resume_problem(self) -> str | None:
        problem, self.resume_problem = self.resume_problem, None
        return problem


class EnvRunner(RunnerBase):
    """Runner ``index`` of ``config.num_runners``: its ``config.num_envs // num_runners`` envs are built at its
    first :meth:`sample` (seeded from the run's step count then), and its policy loads the learner's weights
    whenever their version changes."""

    config: ActorCriticConfig  # a single-agent actor-critic trainer's

    def __init__(self, config: ActorCriticConfig, index: int) -> None:
        super().__init__(config, index)
        self.policy = build_policy(config)
        self.flat = FlatParameters(self.policy)
        # sync: the run's one acting stream, its state set by every call; async: a stream of its own
        self.asynchronous = config.runner_mode == "async"
        self.generator = np.random.default_rng([config.seed, index] if self.asynchronous else config.seed)
        self.rollout: Rollout | None = None
        self.norms = Normalizers()

    def _start(self, global_step: int) -> Rollout:
        cfg = self.config
        seed = cfg.seed + global_step + self.index * self.num_envs  # env g gets seed + step + g, as locally
        venv, self.norms = make_envs(cfg, self.num_envs, seed)
        if self.asynchronous:
            draws = SliceOfDraws(self.generator, self.num_envs, 0, self.num_envs)
        else:
            draws = SliceOfDraws(self.generator, cfg.num_envs, self.index * self.num_envs, self.num_envs)
        rollout = Rollout(
            venv, self.policy, cfg.num_steps, torch.device("cpu"), rng=draws, sde_sample_freq=cfg.sde_sample_freq
        )
        rollout.env_steps = global_step
        obs, _ = venv.reset(seed=seed)
        rollout.start(obs)
        saved, self.saved = self.saved, None
        if saved is not None:  # exactly where they were, or (state a checkpoint cannot hold) the reset above
            try:
                snapshot.restore(venv, saved["venv"])
                rollout.obs = saved["obs"].numpy().copy()
                rollout.prev_done[:] = saved["prev_done"].numpy()
            except ValueError as e:
                self.resume_problem = str(e)
        return rollout

    def state(self) -> dict[str, Any] | None:
        """Its envs' state and its place in their episodes, for an exact resume (None before its first sample)."""
        r = self.rollout
        if r is None:
            return None
        return {
            "venv": snapshot.snapshot(r.venv),
            "obs": torch.from_numpy(np.array(r.obs)),
            "prev_done": torch.from_numpy(r.prev_done.copy()),
        }

    def sample(self, weights: np.ndarray, sync: Sync) -> Fragment:
        """Load ``weights`` (the learner's flat parameters) if their version is new, then collect one rollout
        with the run's acting generator at ``sync.acting_rng``."""
        if sync.version != self.version:
            self.flat.param.detach().numpy()[:] = weights  # in place: the numpy acting path reads these views
            self.version = sync.version
        if self.rollout is None:
            self.rollout = self._start(sync.global_step)
        if sync.acting_rng is not None:
            self.generator.bit_generator.state = sync.acting_rng
        before = sync.normalizers or self.norms.state()  # the run's statistics (at first, the wrappers' own)
        self.norms.load_state(before)
        rollout = self.rollout
        batch = self._in_own_torch_stream(lambda: rollout.collect(episodic=sync.episodic))
        episodes = self.rollout.episodes
        returns, lengths, ended_at = list(episodes.returns), list(episodes.lengths), list(episodes.ended_at)
        episodes.drain()
        return Fragment(
            index=self.index,
            version=self.version,
            arrays={f.name: getattr(batch, f.name).numpy() for f in fields(Batch)},
            returns=returns,
            lengths=lengths,
            ended_at=ended_at,
            steps_taken=self.rollout.steps_taken,
            obs=np.asarray(self.rollout.obs),
            acting_rng=self.generator.bit_generator.state,
            resume_problem=self._take_resume_problem(),
            normalizers=(before, self.norms.state()) if before else None,
        )

    def close(self) -> None:
        """Close the envs."""
        if self.rollout is not None:
            self.rollout.venv.close()
