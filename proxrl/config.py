"""Run configuration: frozen dataclasses with documented, range-checked fields, and strict YAML loading.

Every algorithm's config is a frozen, keyword-only dataclass deriving from :class:`RunConfig`. Fields are
declared with :func:`param`, whose ``help`` starts with the paper's symbol and becomes ``--help`` text. Loading
is strict: an unknown key is refused with a "did you mean" suggestion, values are coerced by annotation, and
ranges are checked at construction, so a bad run is refused before any environment is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from .errors import ConfigError as ConfigError  # defined below every module that raises it; its public home is here


def param(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    choices: tuple[Any, ...] | None = None,
    factory: Any = None,
) -> Any:
    """A config field with its help text and allowed values (a closed or open interval, or choices)."""
    meta = {"help": help, "low": low, "high": high, "low_open": low_open, "high_open": high_open, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _describe_range(meta: typing.Mapping[str, Any]) -> str:
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    low, high = meta.get("low"), meta.get("high")
    left = "(" if meta.get("low_open") else "["
    right = ")" if meta.get("high_open") else "]"
    return f"a value in {left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


def _check_range(name: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"config key '{name}' is {value!r}; allowed: {_describe_range(meta)}")
    if value is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    low, high = meta.get("low"), meta.get("high")
    bad = isinstance(value, float) and math.isnan(value)
    if low is not None:
        bad |= value <= low if meta.get("low_open") else value < low
    if high is not None:
        bad |= value >= high if meta.get("high_open") else value > high
    if bad:
        raise ConfigError(f"config key '{name}' is {value!r}; allowed: {_describe_range(meta)}")


_WRONG = object()  # a scalar coercer's "this value does not fit the type"


def _to_bool(value: Any) -> Any:
    return value if isinstance(value, bool) else _WRONG


def _to_int(value: Any) -> Any:
    if isinstance(value, bool):
        return _WRONG
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, float) and value.is_integer() else _WRONG


def _to_float(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)  # YAML reads "1e-3" (no dot) as a string
        except ValueError:
            return _WRONG
    return _WRONG


def _to_str(value: Any) -> Any:
    return value if isinstance(value, str) else _WRONG


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Coerce ``value`` (from YAML or a ``--set`` string) to the field's annotated type, or raise ConfigError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(name, value, args)
    wrong = ConfigError(
        f"config key '{name}' must be {getattr(annotation, '__name__', annotation)}, got {value!r} "
        f"({type(value).__name__})"
    )
    if origin is tuple:
        if isinstance(value, str) and "," in value:  # --set hidden_sizes=128,128 (YAML reads it as one string)
            value = [yaml.safe_load(v) for v in value.split(",")]
        elif (
            value is not None
            and not isinstance(value, (list, tuple, dict))
            and (args[0] is str or not isinstance(value, str))
        ):
            value = [value]  # one value: a tuple of one (hidden_sizes=64)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"config key '{name}' must be a list, got {value!r} ({type(value).__name__}): write it as "
                f"{name}=[64,64] or {name}=64,64"
            )
        return tuple(_coerce(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value))
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise wrong
        return dict(value)
    if annotation not in _SCALARS:
        raise TypeError(f"unsupported annotation {annotation!r} on field {name}")  # a bug in a config class
    out = _SCALARS[annotation](value)
    if out is _WRONG:
        raise wrong
    return out


def _coerce_union(name: str, value: Any, args: tuple[Any, ...]) -> Any:
    """The first member type of an ``X | Y | None`` annotation that ``value`` coerces to."""
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(name, value, arg)
        except ConfigError as e:
            errors.append(str(e))
    raise ConfigError(errors[0] if errors else f"config key '{name}' has a wrong type")


C = TypeVar("C", bound="RunConfig")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Settings every trainer shares: the task, the budget, seeding, devices and run outputs. Trainers that step
    environments add theirs (``algos.agent.RolloutConfig``); GRPO adds its own."""

    algo: ClassVar[str] = "base"
    # another library's names of this config's keys (name → key), read by :meth:`translate` and offered by the
    # "did you mean" of an unknown key; a key of ``RUN_DIR`` is the run directory, which is no config key
    aliases: ClassVar[typing.Mapping[str, str]] = {}

    env: str = param("CartPole-v1", "gymnasium id, or 'module:EnvId' to import a module that registers it")
    env_kwargs: dict[str, Any] = param(help="keyword arguments for the environment's constructor", factory=dict)
    total_steps: int = param(100_000, "environment steps to train for (summed over the N envs)", low=1)
    seed: int = param(0, "seed for torch, numpy, python and the environments", low=0)
    device: str = param(
        "auto", "'auto' picks CUDA only where it pays (large nets), else the CPU", choices=("auto", "cpu", "cuda")
    )
    torch_threads: int = param(1, "torch intra-op threads; 1 is fastest for small MLPs", low=1)
    checkpoint_every: int = param(50, "write a checkpoint every this many updates (0: only at the end)", low=0)
    keep_checkpoints: int = param(3, "how many periodic checkpoints to keep", low=1)
    log_every: int = param(1, "a row in progress.csv and TensorBoard every this many updates, and the last", low=1)
    tensorboard: bool = param(True, "write TensorBoard event files in the run directory")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_range(f.name, getattr(self, f.name), f.metadata)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; subclasses extend this."""

    def subject(self) -> str:
        """What the run trains on, for its messages and default run directory: the env."""
        return self.env

    @classmethod
    def translate(cls, values: typing.Mapping[str, Any]) -> dict[str, Any]:
        """One layer of settings (a file, the overrides) with other libraries' names and values replaced by this
        config's (:attr:`aliases`); the base class has none. Names that are no key of this config stay, for
        :func:`from_dict` to refuse."""
        return dict(values)

    @classmethod
    def finish_translation(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The merged layers, with what :meth:`translate` left for the whole config (a setting derived from other
        keys) resolved; the base class has nothing to resolve."""
        return values

    @classmethod
    def keys(cls) -> frozenset[str]:
        """The config's keys (its fields' names)."""
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def help(cls) -> dict[str, str]:
        """Each key's help text with its default and allowed values."""
        out = {}
        for f in dataclasses.fields(cls):
            factory = f.default_factory
            default = f.default if factory is dataclasses.MISSING else factory()
            allowed = (
                _describe_range(f.metadata)
                if (
                    f.metadata.get("choices") or f.metadata.get("low") is not None or f.metadata.get("high") is not None
                )
                else ""
            )
            out[f.name] = f"{f.metadata.get('help', '')} (default {default!r}{'; ' + allowed if allowed else ''})"
        return out


_OBJECTS: dict[str, Any] = {}  # classes and functions passed as objects in this process (a notebook's, say)


def object_path(obj: Any) -> str:
    """The ``module:name`` path a config holds for a class or function passed as an object (a features extractor,
    a reward function). This process finds the object again by that path (:func:`registered_object`) even where
    its module cannot be imported (``__main__``, a notebook, a local definition); a run loaded in another process
    needs it importable. Another object already under that path (a second lambda) gets ``#<id>`` appended."""
    path = f"{obj.__module__}:{getattr(obj, '__qualname__', type(obj).__name__)}"
    if _OBJECTS.get(path, obj) is not obj:
        path += f"#{id(obj)}"
    _OBJECTS[path] = obj
    return path


def registered_object(path: str) -> Any | None:
    """The object :func:`object_path` gave ``path`` in this process, or None."""
    return _OBJECTS.get(path)


RUN_DIR = "run_dir"  # an alias's target that is the run directory (a trainer's argument, --run-dir), not a key


def run_directory(run_dir: str | Path | None, output_dir: str | Path | None) -> str | Path | None:
    """The run directory given as ``run_dir`` or as TRL's ``output_dir`` (both: they must agree)."""
    if output_dir is None:
        return run_dir
    if run_dir is not None and Path(run_dir) != Path(output_dir):
        raise ConfigError(f"run_dir={run_dir} and output_dir={output_dir} name two run directories: give one")
    return output_dir


def _suggest(key: str, names: list[str], aliases: typing.Mapping[str, str] | None = None) -> str:
    """The "did you mean" of the closest of the config's ``names`` and the other library's ``aliases`` (which names the
    key it stands for), or the list of keys."""
    aliases = aliases or {}
    close = difflib.get_close_matches(key, names + list(aliases), n=1, cutoff=0.5)
    if not close:
        return f"; known keys: {', '.join(sorted(names))}"
    if close[0] in aliases:
        return f"; did you mean '{close[0]}' (another name of '{aliases[close[0]]}')?"
    return f"; did you mean '{close[0]}'?"


def parse_overrides(overrides: typing.Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings (``--set``); values are read as YAML scalars or lists."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, _, raw = item.partition("=")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {key}: cannot read value {raw!r}: {e}") from None
    return out


def from_dict(cls: type[C], values: typing.Mapping[str, Any]) -> C:
    """Build ``cls`` from a mapping, strictly: unknown keys, wrong types and out-of-range values are refused."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in cls.finish_translation(cls.translate(values)).items():
        if key == "algo":
            if value != cls.algo:
                raise ConfigError(f"this config is for algorithm '{value}', not '{cls.algo}'")
            continue
        if key not in fields:
            renamed = getattr(cls, "renamed", {}).get(key)
            if renamed:
                raise ConfigError(f"config key '{key}' of {cls.algo} is now {renamed}")
            if cls.aliases.get(key) == RUN_DIR:
                raise ConfigError(
                    f"'{key}' is the run directory, not a config key: give it as run_dir= (Python) or --run-dir"
                )
            raise ConfigError(f"unknown config key '{key}' for {cls.algo}" + _suggest(key, list(fields), cls.aliases))
        kwargs[key] = _coerce(key, value, hints[key])
    try:
        return cls(**kwargs)
    except TypeError as e:  # a bug, or a missing required field
        raise ConfigError(str(e)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value, got {type(data).__name__}")
    return data


def resolve(
    cls: type[C],
    path: str | Path | None = None,
    overrides: typing.Mapping[str, Any] | None = None,
    *,
    base: RunConfig | typing.Mapping[str, Any] | None = None,
) -> C:
    """The one way a config is built: ``cls``'s defaults < ``base`` (a config, a preset's or a checkpoint's
    values) < the YAML file at ``path`` < ``overrides`` (``--set`` and flags, keyword arguments); later wins, and
    the result is checked strictly (:func:`from_dict`)."""
    values: dict[str, Any] = {}
    layers = [
        to_dict(base) if isinstance(base, RunConfig) else base,
        read_yaml(path) if path is not None else None,
        overrides,
    ]
    for layer in layers:
        if layer:  # each layer's other names become keys before it is laid over the ones below (later wins)
            values = merge_layer(cls, values, cls.translate(layer))
    return from_dict(cls, values)


def merge_layer(cls: type[RunConfig], values: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` (translated) laid over ``values``: a key it sets replaces the one below, and so does a setting it
    derives another key from (one of ``cls``'s :attr:`~RunConfig.aliases` kept for :meth:`finish_translation`),
    and the other way round."""
    out = {**values, **layer}
    for name, key in cls.aliases.items():
        if name in layer and key in values and key not in layer:
            del out[key]
        if key in layer and name in values and name not in layer:
            del out[name]
    return out


def to_dict(config: RunConfig) -> dict[str, Any]:
    """The config as plain YAML-able values, with ``algo`` first."""
    out: dict[str, Any] = {"algo": config.algo}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def dump(config: RunConfig) -> str:
    """YAML text such that ``from_dict(type(c), yaml.safe_load(dump(c))) == c``."""
    return str(yaml.safe_dump(to_dict(config), sort_keys=False))


def read_yaml_text(text: str) -> dict[str, Any]:
    """A YAML mapping from text (e.g. the config stored in a checkpoint)."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError("stored config is not a mapping")
    return data
