"""Stores the CLI tests share: a generated shop with the segment library (``shop``), a
smaller one a month long for the real-time commands (``live_shop``), and a store of two
profiles (``store``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segflow.cli import app
from segflow.demo import SEGMENTS_DIR
from segflow.demo.generator import generate_shop

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SEGFLOW_DB": None})


def _loaded(root: Path, **shop: int) -> Path:
    summary = generate_shop(root / "data", **shop)
    db = root / "shop.duckdb"
    res = runner.invoke(app, ["ingest", *map(str, summary.paths), "--db", str(db)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["segments", "apply", str(SEGMENTS_DIR), "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "created" in res.output
    return db


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A loaded store with the segment library applied."""
    return _loaded(tmp_path_factory.mktemp("shop"), customers=400, seed=3)


@pytest.fixture(scope="session")
def live_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A month of a small shop with the segment library applied."""
    return _loaded(tmp_path_factory.mktemp("live-shop"), customers=60, seed=5, days=30)


def _event(user: str, n: int, ts: str = "2026-11-01T10:00:00Z", **traits: object) -> str:
    body: dict[str, object] = {
        "type": "identify" if traits else "track",
        "userId": user,
        "messageId": f"{user}-{n}",
        "timestamp": ts,
    }
    if traits:
        body["traits"] = traits
    else:
        body["event"] = "Product Viewed"
    return json.dumps(body)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with two profiles (u1 with traits)."""
    f = tmp_path / "events.jsonl"
    lines = [
        _event("u1", 1),
        _event("u1", 2, country="PL", email="u1@example.com", vip=True),
        _event("u2", 1),
    ]
    f.write_text("\n".join(lines) + "\n")
    db = tmp_path / "s.duckdb"
    res = runner.invoke(app, ["ingest", str(f), "--db", str(db)])
    assert res.exit_code == 0, res.output
    return db


@pytest.fixture
def apply_text(tmp_path: Path) -> Callable[..., str]:
    """``segments apply`` of one definition's text (extra arguments passed on); returns
    the output."""

    def apply(db: Path, text: str, *extra: str) -> str:
        seg = tmp_path / "seg.yaml"
        seg.write_text(text)
        res = runner.invoke(app, ["segments", "apply", str(seg), "--db", str(db), *extra])
        assert res.exit_code == 0, res.output
        return res.output

    return apply
