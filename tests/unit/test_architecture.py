"""The package's import graph, read from the source (AST, nothing imported): no cycles, a pure core, one MLflow door.

Every ``import`` and ``from ... import`` counts wherever it is written: at module level, inside a function
(a cycle hidden by a function-local import is still a cycle) and under ``if TYPE_CHECKING:``. Relative
imports are resolved; ``from pkg import name`` where ``pkg.name`` is a module counts as importing that module.
An edge points at the module named, not at the packages above it (whose ``__init__`` Python also runs).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = "airflow_ml_provider"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

# The pure core: data and decisions, no Airflow or MLflow machinery. It may import other package modules,
# but nothing it reaches, directly or through them, may be an operator, sensor, hook or trigger.
PURE_CORE = (
    "airflow_ml_provider.gate",
    "airflow_ml_provider.gate.decide",
    "airflow_ml_provider.gate.evidence",
    "airflow_ml_provider.gate.policy",
    "airflow_ml_provider.gate.verdict",
    "airflow_ml_provider.model.metrics",
    "airflow_ml_provider.scenarios.spec",
    "airflow_ml_provider.data.expectations",
    "airflow_ml_provider.monitoring.drift",
    "airflow_ml_provider.monitoring.shadow",
)
AIRFLOW_SIDE = tuple(f"{PACKAGE}.{name}" for name in ("operators", "sensors", "hooks", "triggers"))
MLFLOW_DOOR = f"{PACKAGE}.hooks"  # the only package that may construct an MlflowClient


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__``)."""
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


@cache
def tree(name: str) -> ast.Module:
    path = modules()[name]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _owned(dotted: str) -> str | None:
    """The deepest module of ours that ``dotted`` names (``a.b.C`` -> ``a.b`` when C is not a module)."""
    known = modules()
    while dotted:
        if dotted in known:
            return dotted
        dotted = dotted.rpartition(".")[0]
    return None


def _imports(name: str) -> Iterator[tuple[str, int]]:
    """(imported module of ours, line) for every import statement in module ``name``."""
    is_package = modules()[name].name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _owned(alias.name)
                if target:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            if base != PACKAGE and not base.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in modules() else _owned(base)
                if target:
                    yield target, node.lineno


@cache
def graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line importing it}; self-imports (``from . import x`` in x) dropped."""
    edges: dict[str, dict[str, int]] = {}
    for name in modules():
        out: dict[str, int] = {}
        for target, line in _imports(name):
            if target != name:
                out.setdefault(target, line)
        edges[name] = out
    return edges


def _strongly_connected(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _path(edges: dict[str, dict[str, int]], start: str, goal: str, within: set[str]) -> list[str]:
    """A shortest import chain start -> ... -> goal through modules in ``within`` (breadth first)."""
    previous: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges[node]):
                if child in within and child not in previous:
                    previous[child] = node
                    following.append(child)
        if goal in previous:
            break
        frontier = following
    chain = [goal]
    step = previous[goal]
    while step is not None:
        chain.append(step)
        step = previous[step]
    return chain[::-1]


def _show(edges: dict[str, dict[str, int]], chain: list[str]) -> str:
    """``a (a.py:12) -> b (b.py:3) -> c``: each step with the line that imports the next module."""
    steps = []
    for here, there in zip(chain, chain[1:], strict=False):
        where = modules()[here].relative_to(ROOT.parent)
        steps.append(f"{here} ({where}:{edges[here][there]})")
    return " -> ".join([*steps, chain[-1]])


def describe_cycle(edges: dict[str, dict[str, int]], component: list[str]) -> str:
    """One concrete cycle through the first module of a strongly connected component, and its members."""
    members = set(component)
    first = component[0]
    closing = [node for node in component if first in edges[node]]
    back = min(closing, key=lambda node: len(_path(edges, first, node, members)))
    chain = [*_path(edges, first, back, members), first]
    return f"{len(component)} modules ({', '.join(component)}); e.g. {_show(edges, chain)}"


def _reachable(edges: dict[str, dict[str, int]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for child in edges[todo.pop()]:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


# --- the walker itself ------------------------------------------------------------------------------------


def test_the_walker_sees_local_type_checking_relative_and_submodule_imports() -> None:
    """The rules below are only as good as the graph: check it on known shapes of import."""
    edges = graph()
    assert len(modules()) > 30 and f"{PACKAGE}.gate.decide" in modules()
    assert f"{PACKAGE}.gate.decide" in edges[f"{PACKAGE}.gate"]  # `from airflow_ml_provider.gate.decide import`
    # every module of ours that is imported anywhere is a node with its own (possibly empty) edges
    assert all(target in edges for targets in edges.values() for target in targets)


def test_resolution_of_relative_and_from_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A miniature package: relative levels, ``from pkg import submodule``, function-local and TYPE_CHECKING."""
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from airflow_ml_provider.a import thing\n",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\nthing = 1\n",
        "b.py": "def f():\n    from .sub import c\n",
        "sub/__init__.py": "",
        "sub/c.py": "from .. import a\nfrom ..sub import d as _d\nimport airflow_ml_provider.b.missing\n",
        "sub/d.py": "import mlflow\nfrom mlflow import MlflowClient\nMlflowClient()\nmlflow.MlflowClient(uri)\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.setattr(f"{__name__}.ROOT", package)
    for cached in (modules, tree, graph):
        cached.cache_clear()
    try:
        edges = graph()
        assert edges == {
            PACKAGE: {f"{PACKAGE}.a": 1},
            f"{PACKAGE}.a": {f"{PACKAGE}.b": 3},
            f"{PACKAGE}.b": {f"{PACKAGE}.sub.c": 2},
            f"{PACKAGE}.sub": {},
            f"{PACKAGE}.sub.c": {f"{PACKAGE}.a": 1, f"{PACKAGE}.sub.d": 2, f"{PACKAGE}.b": 3},
            f"{PACKAGE}.sub.d": {},
        }
        assert _strongly_connected(edges) == [[f"{PACKAGE}.a", f"{PACKAGE}.b", f"{PACKAGE}.sub.c"]]
        message = describe_cycle(edges, _strongly_connected(edges)[0])
        assert message.endswith(
            f"{PACKAGE}.a ({PACKAGE}/a.py:3) -> {PACKAGE}.b ({PACKAGE}/b.py:2) -> "
            f"{PACKAGE}.sub.c ({PACKAGE}/sub/c.py:1) -> {PACKAGE}.a"
        ), message
        assert _mlflow_client_calls(f"{PACKAGE}.sub.d") == [3, 4]
    finally:
        for cached in (modules, tree, graph):
            cached.cache_clear()


# --- the rules ----------------------------------------------------------------------------------------------


def test_no_import_cycles() -> None:
    edges = graph()
    cycles = [describe_cycle(edges, component) for component in _strongly_connected(edges)]
    assert not cycles, "import cycles (function-local and TYPE_CHECKING imports count):\n" + "\n".join(
        f"  {cycle}" for cycle in cycles
    )


@pytest.mark.parametrize("module", PURE_CORE)
def test_the_pure_core_reaches_no_operator_sensor_hook_or_trigger(module: str) -> None:
    assert module in modules(), f"{module} is listed in PURE_CORE but no longer exists: update the list"
    edges = graph()
    reached = _reachable(edges, module)
    bad = sorted(name for name in reached if name.startswith(AIRFLOW_SIDE))
    chains = [_show(edges, _path(edges, module, name, set(edges))) for name in bad]
    assert not bad, f"{module} reaches the Airflow side:\n" + "\n".join(f"  {chain}" for chain in chains)


def _mlflow_client_calls(name: str) -> list[int]:
    """Lines in module ``name`` that call ``MlflowClient(...)`` (bare or as ``mlflow.MlflowClient``)."""
    return [
        node.lineno
        for node in ast.walk(tree(name))
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "MlflowClient")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "MlflowClient")
        )
    ]


def test_only_the_hooks_construct_an_mlflow_client() -> None:
    """One door to MLflow: its URIs, credentials and HTTP bounds are the connection's, set in one place."""
    outside = [
        f"{modules()[name].relative_to(ROOT.parent)}:{line}"
        for name in modules()
        if name != MLFLOW_DOOR and not name.startswith(MLFLOW_DOOR + ".")
        for line in _mlflow_client_calls(name)
    ]
    assert not outside, f"MlflowClient( outside {MLFLOW_DOOR.replace('.', '/')}/ (go through MlflowHook): {outside}"
