"""Versioned segment definitions, static snapshots and evaluated memberships in DuckDB."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import duckdb
import orjson
import pyarrow as pa

from segflow.model.definition import STORED, Segment, parse_segment
from segflow.model.errors import DefinitionError, Problem
from segflow.model.time import utcnow
from segflow.plan.planner import check_references


class SegmentRegistry:
    """Current and past versions of every segment; a save that changes nothing is a no-op."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def current(self) -> dict[str, Segment]:
        rows = self.con.execute(
            """
            SELECT d.definition, d.version, d.deleted FROM segment_definitions d
            JOIN (SELECT segment_id, max(version) AS v FROM segment_definitions
                  GROUP BY segment_id) m
              ON d.segment_id = m.segment_id AND d.version = m.v
            ORDER BY d.segment_id
            """
        ).fetchall()
        out: dict[str, Segment] = {}
        for definition, version, deleted in rows:
            if deleted:
                continue
            seg = parse_segment(orjson.loads(definition), STORED)
            out[seg.id] = _with_version(seg, int(version))
        return out

    def get(self, segment_id: str) -> Segment | None:
        return self.current().get(segment_id)

    def history(self, segment_id: str) -> list[tuple[int, datetime, bool]]:
        rows = self.con.execute(
            "SELECT version, saved_at, deleted FROM segment_definitions WHERE segment_id = ?"
            " ORDER BY version",
            [segment_id],
        ).fetchall()
        return [(int(v), t, bool(d)) for v, t, d in rows]

    def check(self, segments: Iterable[Segment]) -> dict[str, Segment]:
        """The registry as it would be after saving ``segments``; raises on unknown
        references and cycles (with the cycle's path)."""
        merged = self.current()
        for s in segments:
            merged[s.id] = s
        check_references(merged)
        return merged

    def save(self, segments: Iterable[Segment]) -> list[tuple[Segment, str]]:
        """Save new versions atomically; returns each segment with created|updated|unchanged."""
        items = list(segments)
        self.check(items)
        current = self.current()
        out: list[tuple[Segment, str]] = []
        now = utcnow()
        self.con.execute("BEGIN TRANSACTION")
        try:
            for seg in items:
                old = current.get(seg.id)
                if old is not None and old.definition_fingerprint() == seg.definition_fingerprint():
                    out.append((old, "unchanged"))
                    continue
                last = self.con.execute(
                    "SELECT coalesce(max(version), 0) FROM segment_definitions"
                    " WHERE segment_id = ?",
                    [seg.id],
                ).fetchone()
                version = int(last[0]) + 1 if last else 1
                saved = _with_version(seg, version)
                body = saved.to_dict()
                self.con.execute(
                    "INSERT INTO segment_definitions (segment_id, version, definition, fingerprint,"
                    " saved_at, deleted) VALUES (?, ?, ?, ?, ?, FALSE)",
                    [
                        seg.id,
                        version,
                        orjson.dumps(body).decode(),
                        seg.definition_fingerprint(),
                        now,
                    ],
                )
                out.append((saved, "created" if old is None else "updated"))
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return out

    def delete(self, segment_id: str, *, force: bool = False) -> Segment:
        """Mark a segment deleted; protected ones and ones still referenced refuse."""
        current = self.current()
        seg = current.get(segment_id)
        if seg is None:
            raise KeyError(segment_id)
        if seg.protected and not force:
            raise DefinitionError(
                [Problem("protected", f"segment {segment_id!r} is protected from deletion")]
            )
        users = sorted(
            s.id
            for s in current.values()
            if s.id != segment_id and s.condition is not None and _refers(s, segment_id)
        )
        if users:
            raise DefinitionError(
                [Problem("in_segment", f"{segment_id!r} is used by: {', '.join(users)}")]
            )
        body = _with_version(seg, seg.version + 1).to_dict()
        self.con.execute(
            "INSERT INTO segment_definitions (segment_id, version, definition, fingerprint,"
            " saved_at, deleted) VALUES (?, ?, ?, ?, ?, TRUE)",
            [segment_id, seg.version + 1, orjson.dumps(body).decode(), "", utcnow()],
        )
        self.con.execute("DELETE FROM static_members WHERE segment_id = ?", [segment_id])
        self.con.execute("DELETE FROM memberships WHERE segment_id = ?", [segment_id])
        return seg

    def known_profiles(self, ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """(profile ids, unknown ids) of a list of ids: each id is a profile id, or a user
        or anonymous id resolved to its profile; ids no profile has are returned apart so
        a static list counts only real members."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return [], []
        self.con.register("_listed_ids", pa.table({"id": pa.array(wanted, pa.string())}))
        try:
            rows = self.con.execute(
                "SELECT l.id, coalesce(p.profile_id, u.profile_id, a.profile_id)"
                " FROM _listed_ids l"
                " LEFT JOIN profiles p ON p.profile_id = l.id"
                " LEFT JOIN identities u ON u.kind = 'user' AND u.value = l.id"
                " LEFT JOIN identities a ON a.kind = 'anonymous' AND a.value = l.id"
            ).fetchall()
        finally:
            self.con.unregister("_listed_ids")
        found = {str(i): (str(p) if p is not None else None) for i, p in rows}
        members = sorted({p for p in found.values() if p is not None})
        return members, [i for i in wanted if found.get(i) is None]

    def set_static_members(self, segment_id: str, profile_ids: Iterable[str]) -> int:
        """Replace a static segment's snapshot in one transaction."""
        ids = sorted(set(profile_ids))
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("DELETE FROM static_members WHERE segment_id = ?", [segment_id])
            if ids:
                batch = pa.table({"profile_id": pa.array(ids, pa.string())})
                self.con.register("_static_ids", batch)
                try:
                    self.con.execute(
                        "INSERT INTO static_members (segment_id, profile_id)"
                        " SELECT ?, profile_id FROM _static_ids",
                        [segment_id],
                    )
                finally:
                    self.con.unregister("_static_ids")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return len(ids)


def _refers(seg: Segment, target: str) -> bool:
    from segflow.model.definition import referenced_segments

    return seg.condition is not None and target in referenced_segments(seg.condition)


def _with_version(seg: Segment, version: int) -> Segment:
    from dataclasses import replace

    return replace(seg, version=version)
