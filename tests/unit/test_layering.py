"""How the package's modules depend on each other: no cycles, no private names across
modules (read from the source, so a TYPE_CHECKING import counts too), and only
``segflow.store`` writes SQL: the service modules and the shells call store methods."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import segflow

SRC = Path(segflow.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in SRC.rglob("*.py"):
        parts = ("segflow", *p.relative_to(SRC).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = _modules()


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run at import (imports inside functions are left out)."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
            for h in getattr(node, "handlers", []):
                yield from _top_level(h.body)


def _imports(module: str) -> Iterator[tuple[str, str | None]]:
    """(imported segflow module, imported name or None) of every import in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _top_level(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                full = f"{base}.{a.name}"
                yield (full, None) if full in MODULES else (base, a.name)


def _owner(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph(level: int | None = None) -> dict[str, set[str]]:
    """Module (or, with ``level``, package prefix) -> what it imports within segflow."""

    def key(m: str) -> str:
        return m if level is None else ".".join(m.split(".")[:level])

    graph: dict[str, set[str]] = {}
    for m in MODULES:
        for target, _name in _imports(m):
            t = _owner(target)
            if t is not None and key(t) != key(m):
                graph.setdefault(key(m), set()).add(key(t))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_through_others() -> None:
    assert _cycles(_graph()) == []


def test_the_api_and_the_edge_depend_one_way() -> None:
    packages = [c for c in _cycles(_graph(level=2)) if {"segflow.api", "segflow.edge"} <= set(c)]
    assert packages == []


def test_no_private_name_is_imported_from_another_module() -> None:
    crossing = [
        f"{m} imports {name} from {target}"
        for m in MODULES
        for target, name in _imports(m)
        if name is not None and name.startswith("_") and target.startswith("segflow")
    ]
    assert crossing == []


def test_evaluators_take_their_inputs_from_the_model_not_the_oracle() -> None:
    shapes = {"Event", "TraitWrite", "ProfileHistory", "MISSING"}
    from_oracle = [
        f"{m} imports {name}"
        for m in MODULES
        if m.startswith(("segflow.realtime", "segflow.batch"))
        for target, name in _imports(m)
        if target == "segflow.plan.interpret" and name in shapes
    ]
    assert from_oracle == []


RUNS_SQL = re.compile(r"\.execute\(|\.sql\(")
SERVICE_MODULES = tuple(
    f"service/{name}.py"
    for name in ("handle", "ingest", "segments", "profiles", "delivery", "scores")
)
SHELLS = ("cli.py", "api", "edge")


def _files(*names: str) -> list[Path]:
    out: list[Path] = []
    for name in names:
        path = SRC / name
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


@pytest.mark.parametrize(
    "path", _files(*SERVICE_MODULES, *SHELLS), ids=lambda p: str(p.relative_to(SRC))
)
def test_module_outside_store_runs_no_sql(path: Path) -> None:
    lines = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if RUNS_SQL.search(line)
    ]
    assert lines == []


@pytest.mark.parametrize(
    "path", _files("cli.py", "api", "edge"), ids=lambda p: str(p.relative_to(SRC))
)
def test_shells_never_touch_the_connection(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert re.search(r"\.con\b", text) is None
