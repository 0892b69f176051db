"""How the package's modules depend on each other: no cycles, no private names across
modules (read from the source, so a TYPE_CHECKING import counts too), and only
``segflow.store`` writes and runs SQL: the service, the shells and the computations
(``traits``, ``batch``) call store methods and never touch a connection.
(the CLI imports nothing from the store: it holds the service)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
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


REALTIME_LAYERS = ("values", "state", "kernels", "compile", "explain", "engine", "timers")
"""The real-time evaluator's modules, each importing only from those before it."""


def _realtime_layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[:2] != ["segflow", "realtime"] or len(parts) < 3:
        return None
    return REALTIME_LAYERS.index(parts[2])


def test_the_realtime_evaluator_depends_downward_only() -> None:
    upward = [
        f"{m} imports {t}"
        for m in MODULES
        if (layer := _realtime_layer(m)) is not None
        for target, _name in _imports(m)
        if (t := _owner(target)) is not None
        and (other := _realtime_layer(t)) is not None
        and other > layer
    ]
    assert upward == []


@pytest.mark.parametrize(
    "path", sorted((SRC / "analytics").rglob("*.py")), ids=lambda p: str(p.relative_to(SRC))
)
def test_analytics_is_pure_computation(path: Path) -> None:
    """Analytics computes over arrays the caller hands in: NumPy, SciPy and the standard
    library only (absolute imports, inside functions too), nothing else from segflow, no
    SQL."""
    allowed = {"numpy", "scipy", *sys.stdlib_module_names}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [
        "." * n.level + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    ]
    outside = [
        name
        for name in names
        if not name.startswith("segflow.analytics") and name.partition(".")[0] not in allowed
    ]
    assert outside == []
    assert RUNS_SQL.search(path.read_text(encoding="utf-8")) is None


RUNS_SQL = re.compile(r"\.execute(many)?\(|\.sql\(")
EXECUTES = re.compile(r"\.execute(many)?\(")
TOUCHES_CONNECTION = re.compile(r"\.con\b")
SERVICE_MODULES = ("service",)
"""The one handle shells hold: it calls store objects and holds no connection."""
COMPUTATIONS = ("traits", "batch")
"""Pure: traits fit and score arrays the store hands over, batch compiles typed
expressions the store runs."""
COMPILER = "batch"
"""Renders its typed query in the target dialect (``.sql(``); the store runs the text."""
SHELLS = ("cli", "api", "edge")


def _files(*names: str) -> list[Path]:
    out: list[Path] = []
    for name in names:
        path = SRC / name
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def _ids(p: Path) -> str:
    return str(p.relative_to(SRC))


OUTSIDE_STORE = _files(*SERVICE_MODULES, *COMPUTATIONS, *SHELLS)


@pytest.mark.parametrize("path", OUTSIDE_STORE, ids=_ids)
def test_module_outside_store_runs_no_sql(path: Path) -> None:
    rule = EXECUTES if path.relative_to(SRC).parts[0] == COMPILER else RUNS_SQL
    lines = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if rule.search(line)
    ]
    assert lines == []


@pytest.mark.parametrize("path", OUTSIDE_STORE, ids=_ids)
def test_module_outside_store_never_touches_the_connection(path: Path) -> None:
    lines = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if TOUCHES_CONNECTION.search(line)
    ]
    assert lines == []


ENGINE_NEUTRAL_STORE = sorted([*(SRC / "store").glob("*.py"), *_files("store/records")])
"""``store/`` itself and its records: the protocols and plain types every engine shares."""


@pytest.mark.parametrize("path", ENGINE_NEUTRAL_STORE, ids=_ids)
def test_the_engine_neutral_store_modules_run_no_sql(path: Path) -> None:
    """``store/`` itself holds what every engine shares; each engine's SQL is in its package."""
    text = path.read_text(encoding="utf-8")
    assert RUNS_SQL.search(text) is None
    assert re.search(r"^\s*(import|from) duckdb\b", text, re.MULTILINE) is None
    # the engine registry names each engine's package, DuckDB's as a file engine too
    allowed = {"segflow.store.duckdb.engine"} if path.name == "engines.py" else set()
    duckdb_modules = {m for m in _every_import(path) if m.startswith("segflow.store.duckdb")}
    assert duckdb_modules <= allowed


def _every_import(path: Path) -> Iterator[str]:
    """Every module a file imports, inside functions too."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("path", _files("cli"), ids=lambda p: str(p.relative_to(SRC)))
def test_the_cli_reaches_the_store_only_through_the_service(path: Path) -> None:
    assert [m for m in _every_import(path) if m.startswith("segflow.store")] == []


DUCKDB_IMPORTS_ABOVE_THE_STORE: frozenset[tuple[str, str]] = frozenset(
    {
        ("service/handle.py", "segflow.store.duckdb.stores"),
        ("service/handle.py", "segflow.store.duckdb.destinations"),
        ("service/destinations.py", "segflow.store.duckdb.destinations"),
        ("api/deps.py", "segflow.store.duckdb.clustering"),
        ("api/routes/destinations.py", "segflow.store.duckdb.destinations"),
    }
)
"""The only DuckDB engine modules the service and the shells still import: opening the
store objects over a file, the destination store (no protocol yet) and the writer's
compaction chunk.  Everything else they hold is a protocol or a record."""


def test_the_service_and_shells_import_only_the_listed_duckdb_modules() -> None:
    """Above the store, types come from ``store.protocols`` and ``store.records``; the
    DuckDB imports left are exactly the listed ones (an entry no longer needed must be
    taken off the list)."""
    found = {
        (_ids(path), module)
        for path in _files("service", "api", "cli", "edge", "analytics", "server.py")
        for module in _every_import(path)
        if module == "segflow.store.duckdb" or module.startswith("segflow.store.duckdb.")
    }
    assert found == DUCKDB_IMPORTS_ABOVE_THE_STORE


def test_the_edge_process_loads_nothing_of_the_engine() -> None:
    """The edge starts (and restarts after a crash) in a fraction of the core's time:
    it imports no database, query compiler, web framework or array library."""
    heavy = ("duckdb", "fastapi", "sqlglot", "pyarrow", "numpy", "scipy", "pydantic")
    code = (
        "import sys, segflow.edge.__main__; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
