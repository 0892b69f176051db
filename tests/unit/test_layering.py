"""Only ``segflow.store`` writes SQL: the service modules and the shells call store methods."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "segflow"
RUNS_SQL = re.compile(r"\.execute\(|\.sql\(")
SERVICE_MODULES = ("profiles.py", "segment_ops.py", "service.py")
SHELLS = ("cli.py", "api", "edge")


def _modules(*names: str) -> list[Path]:
    out: list[Path] = []
    for name in names:
        path = SRC / name
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


@pytest.mark.parametrize(
    "path", _modules(*SERVICE_MODULES, *SHELLS), ids=lambda p: str(p.relative_to(SRC))
)
def test_module_outside_store_runs_no_sql(path: Path) -> None:
    lines = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if RUNS_SQL.search(line)
    ]
    assert lines == []


@pytest.mark.parametrize("path", _modules("cli.py", "edge"), ids=lambda p: str(p.relative_to(SRC)))
def test_cli_and_edge_never_touch_the_connection(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert re.search(r"\.con\b", text) is None
