"""gymnasium helpers. :mod:`.make`: resolve an env id (``module:EnvId`` too), build the vector env the learner steps
(NEXT_STEP autoreset: the reset step is masked out of every loss, ``proxrl.rollout``) and a single env for
evaluation with the training run's observation statistics frozen; :mod:`.wrappers`: the normalisers' state, env
errors with their traceback, Dict observations as flat rows (``obs_keys``); :mod:`.no_velocity`: ``hide_obs`` and
the NoVel ids. Beside them: Atari, EnvPool, env snapshots, and the
small tasks of the tests and docs (text, math, memory, pixel, matrix games). This package re-exports the helpers'
names (``from proxrl.envs import make_vec_env``)."""

from . import atari, no_velocity
from .make import OBS_CLIP, make_eval_env, make_vec_env, parse_env_kwargs, resolve_env_id
from .wrappers import FlatDict, Normalizers, ReportEnvErrors, dict_space_of, dropped_keys, flatten_dict

__all__ = [
    "OBS_CLIP",
    "FlatDict",
    "Normalizers",
    "ReportEnvErrors",
    "atari",
    "no_velocity",
    "dict_space_of",
    "dropped_keys",
    "flatten_dict",
    "make_eval_env",
    "make_vec_env",
    "parse_env_kwargs",
    "resolve_env_id",
]
