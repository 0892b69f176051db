"""API keys: hashed at rest, verified in constant time, revocable."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from segflow.model.keys import digest
from segflow.store.duckdb.keys import KeyStore


def test_keys_are_stored_hashed_and_verify_by_kind(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "k.duckdb"))
    keys = KeyStore(con)
    w = keys.create("write", "shop")
    a = keys.create("admin")
    assert w.token.startswith("sfw_") and a.token.startswith("sfa_")
    assert len(w.token) > 40
    stored = [r[0] for r in con.execute("SELECT digest FROM api_keys").fetchall()]
    assert w.token not in stored and digest(w.token) in stored
    found = keys.verify(w.token)
    assert found is not None and found.kind == "write" and found.name == "shop"
    assert keys.verify(a.token) is not None and keys.verify(a.token).kind == "admin"  # type: ignore[union-attr]
    assert keys.verify("sfw_" + "x" * 43) is None
    assert keys.verify(w.token[:-1]) is None


def test_revoke_and_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "k.duckdb")
    con = duckdb.connect(path)
    keys = KeyStore(con)
    w = keys.create("write")
    a = keys.create("admin")
    revoked = keys.revoke(w.key.id)
    assert revoked.revoked_at is not None
    assert keys.verify(w.token) is None
    with pytest.raises(KeyError, match="already revoked"):
        keys.revoke(w.key.id)
    with pytest.raises(ValueError, match="kind"):
        keys.create("root")
    con.close()
    again = KeyStore(duckdb.connect(path))
    assert again.verify(a.token) is not None and again.verify(w.token) is None
    assert sorted((k.kind, k.revoked_at is None) for k in again.list()) == [
        ("admin", True),
        ("write", False),
    ]
