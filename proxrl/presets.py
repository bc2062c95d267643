"""The preset zoo: tuned settings per (algorithm, environment), shipped with the package in ``proxrl/zoo/<algo>/``.

Most come from rl-baselines3-zoo (issue 33), mapped onto proxrl's keys (``vf_coef`` doubled, ``anneal_lr`` and
``num_epochs`` always written). A preset is a plain config YAML whose first comment lines say where it comes from
and how well it does; :func:`find` reads them::

    # source: DLR-RM/rl-baselines3-zoo@22e3ff2 hyperparams/ppo.yml line 119 (LunarLander-v3)
    # zoo: 242.12 ± 31.82 at 1M steps (benchmark.md line 102, LunarLander-v2)
    # proxrl: not yet measured here
    # note: needs gymnasium[box2d]

A file is named after its env id (``LunarLander-v3.yaml``); one preset, ``atari.yaml``, serves every ``ALE/…`` id
(its ``# zoo ALE/Pong-v5: …`` lines give each game's figure). ``proxrl train ALGO --env ENV`` lays the env's preset
between the defaults and ``--config`` (``config.resolve``: defaults < preset < --config < --set); ``proxrl presets``
lists them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import read_yaml
from .envs.atari import is_atari

ZOO = Path(__file__).parent / "zoo"
ATARI = "atari"  # the file name of the preset shared by every Atari game
_HEADER = re.compile(r"#\s*(source|zoo|proxrl|note)(?:\s+([^:\s]+))?:\s*(.*)")


@dataclass(frozen=True)
class Preset:
    """One preset file: its algorithm (the directory), name (an env id, or ``atari``), config values and what its
    header comments say: ``zoo`` and ``measured`` map an env id (``""``: the preset's own) to a figure's text."""

    algo: str
    name: str
    path: Path
    values: dict[str, Any]
    source: str = ""
    zoo: dict[str, str] = field(default_factory=dict)
    measured: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def values_for(self, env: str) -> dict[str, Any]:
        """The config values for a run on ``env`` (the shared Atari preset takes the run's game)."""
        return {**self.values, "env": env} if self.name == ATARI else dict(self.values)

    def figure(self, table: dict[str, str], env: str) -> str:
        """``table``'s figure for ``env`` (the preset's own when it has no per-env line), or ``""``."""
        return table.get(env, table.get("", ""))


def preset_name(env: str) -> str:
    """The preset file name (without ``.yaml``) that serves ``env``: the id without a ``module:`` prefix, or
    ``atari`` for every ale-py id."""
    env_id = env.rpartition(":")[2]
    return ATARI if is_atari(env_id) else env_id


def find(algo: str, env: str) -> Preset | None:
    """The preset of ``algo`` for ``env``, or None when the zoo has none."""
    path = ZOO / algo / f"{preset_name(env)}.yaml"
    return read(path) if path.is_file() else None


def read(path: Path) -> Preset:
    """A preset file: its values (the YAML) and its header comments."""
    tables: dict[str, dict[str, str]] = {"zoo": {}, "proxrl": {}}
    source, notes = "", []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        m = _HEADER.match(line)
        if m is None:
            continue
        kind, env, text = m.groups()
        if kind == "source":
            source = text
        elif kind == "note":
            notes.append(text)
        else:
            tables[kind][env or ""] = text
    return Preset(
        path.parent.name,
        path.stem,
        path,
        read_yaml(path),
        source,
        tables["zoo"],
        tables["proxrl"],
        tuple(notes),
    )


def all_presets(algo: str | None = None) -> list[Preset]:
    """Every preset of the zoo (of ``algo`` only, if given), sorted by algorithm and name."""
    dirs = [ZOO / algo] if algo is not None else sorted(p for p in ZOO.iterdir() if p.is_dir())
    return [read(path) for d in dirs if d.is_dir() for path in sorted(d.glob("*.yaml"))]


def algorithms() -> list[str]:
    """The algorithms the zoo has presets for."""
    return sorted(p.name for p in ZOO.iterdir() if p.is_dir())


def _budget(steps: Any) -> str:
    """1000000 → ``1M``, 100000 → ``100k``."""
    n = int(steps)
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    return f"{n / 1000:g}k" if n >= 1000 and n % 100 == 0 else str(n)


def table(algo: str | None = None) -> list[str]:
    """``proxrl presets``: one line per (algorithm, env) — the Atari preset one per game of the zoo's table —
    with the budget, rl-zoo's published figure and proxrl's, if measured."""
    rows = [("algo", "env", "budget", "rl-zoo (published)", "proxrl (measured)")]
    for p in all_presets(algo):
        envs = sorted(k for k in p.zoo if k) or [str(p.values.get("env", p.name))]
        for env in envs:
            zoo = _short(p.figure(p.zoo, env))
            mine = _short(p.figure(p.measured, env))
            rows.append((p.algo, env, _budget(p.values.get("total_steps", 0)), zoo, mine))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows]


def _short(text: str) -> str:
    """A figure's text without its parenthesised details: ``242.12 ± 31.82 at 1M steps``; ``—`` for none."""
    short = text.split(" (")[0].strip()
    return "—" if not short or short.startswith("no ") or short.startswith("not yet") else short
