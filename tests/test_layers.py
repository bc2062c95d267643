"""proxrl's layers, read from the source with ``ast`` (every ``import`` statement, at module level or inside a
function, ``TYPE_CHECKING`` blocks included): no import cycle, a core that imports no subpackage, and the
algorithms imported only from the top (issue 32).

How an import becomes an edge of the module graph:

- ``import proxrl.a.b`` and ``from proxrl.a import b`` where ``b`` is a module: an edge to ``proxrl.a.b``.
- ``from proxrl.a import name`` where ``proxrl.a`` is a package: an edge to the submodule its ``__init__.py``
  re-exports ``name`` from (followed through nested packages), not to the ``__init__.py``. A package's
  ``__init__.py`` only re-exports (house rule 12), so an edge *into* it is an edge to the module that defines the
  name; a package importing its own submodules is an ordinary edge. A name the ``__init__.py`` defines itself
  (code not yet moved out of it) is an edge to the package.
- Python runs a package's ``__init__.py`` before any of its submodules; that implicit edge is not counted: an
  ``__init__.py`` that only re-exports cannot close a cycle of definitions (and code still in one, being moved out
  in issue 32, shows as the edges to the package above).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import proxrl

ROOT = Path(proxrl.__file__).parent
SUBPACKAGES = ("algos", "envs", "lm", "marl", "runners", "policies", "fast")
CORE = (
    "errors",
    "config",
    "seeding",
    "devices",
    "rundir",
    "checkpoint",
    "run",
    "logging",
    "advantages",
    "objectives",
    "kl",
    "distributions",
)
# Who may import proxrl.algos: the algorithms themselves and the top of the package (its public API, the CLI, the
# TRL-compatible names)
ALGOS_IMPORTERS = ("proxrl", "proxrl.cli", "proxrl.trl")
# Known cycles and layering exceptions, each with its reason
ALLOWED_EDGES: frozenset[tuple[str, str]] = frozenset(
    {
        # the multi-agent collector's row-stepping functions, split out of it by env API (issue 32): they take the
        # collector as their argument and import its class for the annotation only (under TYPE_CHECKING); at run
        # time the imports go one way, collector -> aec / parallel
        ("proxrl.marl.aec", "proxrl.marl.collector"),
        ("proxrl.marl.parallel", "proxrl.marl.collector"),
    }
)


@cache
def modules() -> dict[str, tuple[bool, ast.Module]]:
    """Every proxrl module by dotted name: (is a package's ``__init__.py``, its syntax tree)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if package else parts)
        found[name] = (package, ast.parse(path.read_text(), str(path)))
    return found


def _absolute(name: str, package: bool, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` in module ``name`` names, relative levels resolved."""
    if not node.level:
        return node.module or ""
    base = (name if package else name.rpartition(".")[0]).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _defining_module(module: str, attr: str) -> str:
    """The module that defines what ``from module import attr`` imports (see the module docstring)."""
    mods = modules()
    if f"{module}.{attr}" in mods:
        return f"{module}.{attr}"
    if module not in mods or not mods[module][0]:
        return module
    for node in mods[module][1].body:  # a package: follow its __init__.py's re-export of attr
        if isinstance(node, ast.ImportFrom):
            source = _absolute(module, True, node)
            for alias in node.names:
                if (alias.asname or alias.name) == attr and source.startswith(module + "."):
                    return _defining_module(source, alias.name)
    return module


@cache
def imports(name: str) -> dict[str, int]:
    """The proxrl modules ``name`` imports (module level or inside functions), each with its first line."""
    package, tree = modules()[name]
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(name, package, node)
            targets = [_defining_module(source, alias.name) for alias in node.names]
        else:
            continue
        for target in targets:
            if target != name and target in modules():
                found.setdefault(target, node.lineno)
    return found


def graph() -> dict[str, set[str]]:
    """The import graph, the allowed edges left out."""
    return {name: {t for t in imports(name) if (name, t) not in ALLOWED_EDGES} for name in modules()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = stack[stack.index(node) :]
                    del stack[stack.index(node) :]
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in stack:
                low[node] = min(low[node], index[child])
    return found


def _subpackage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else None


def test_the_import_graph_is_read_from_every_module() -> None:
    # a check of the reader itself: relative imports, re-exports followed, function-level imports seen
    assert {"proxrl.config", "proxrl.lm.text_tasks", "proxrl.algos.grpo"} <= set(modules())
    assert "proxrl.errors" in imports("proxrl.config")
    assert _defining_module("proxrl.lm", "lean_decoder") == "proxrl.lm.decoder"  # a re-export followed
    assert any(_subpackage(t) == "policies" for t in imports("proxrl.runners.runner"))  # its policy (ActorCritic)
    assert "proxrl.lm.text_tasks" in imports("proxrl.lm.math_tasks")
    assert "proxrl.rundir" in imports("proxrl.cli")  # default_run_dir, imported inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_proxrl_modules() -> None:
    found = cycles(graph())
    detail = [[f"{a} -> {b} (line {imports(a)[b]})" for a in c for b in sorted(imports(a)) if b in c] for c in found]
    assert not found, f"import cycles: {detail}"


def test_the_core_imports_no_subpackage_even_indirectly() -> None:
    edges = graph()
    for core in CORE:
        name = f"proxrl.{core}"
        assert name in edges, f"core module {name} is missing: update CORE"
        via = {name: name}  # every module the core module reaches, with the module that imports it
        todo = [name]
        while todo:
            source = todo.pop()
            for target in sorted(edges[source] - via.keys()):
                via[target] = source
                todo.append(target)
        for target in sorted(t for t in via if _subpackage(t) is not None):
            chain = [target]
            while chain[-1] != name:
                chain.append(via[chain[-1]])
            raise AssertionError(f"core module {name} depends on {_subpackage(target)}/: {' -> '.join(chain[::-1])}")


def test_only_the_top_of_the_package_imports_the_algorithms() -> None:
    offenders = [
        f"{name} (line {line})"
        for name in modules()
        if _subpackage(name) != "algos" and name not in ALGOS_IMPORTERS
        for target, line in imports(name).items()
        if _subpackage(target) == "algos"
    ]
    assert not offenders, f"import proxrl.algos from outside algos/, cli.py, trl.py and __init__.py: {offenders}"


def test_no_function_in_proxrl_is_longer_than_60_lines():
    # house rule 12 (issue 32): a function fits on a screen; measured from its `def` (decorators excluded) to its
    # last line, docstring and comments included
    long = []
    for name, (_, tree) in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, long
