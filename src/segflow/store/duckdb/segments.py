"""Versioned segment definitions, static snapshots and evaluated memberships in DuckDB."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import orjson
import pyarrow as pa

from segflow.model.definition import STORED, Segment, parse_segment
from segflow.model.errors import DefinitionError, Problem
from segflow.model.groups import (
    Group,
    expand,
    group_of,
    membership_problems,
    parse_group,
    split_resolved,
    with_version,
)
from segflow.model.time import utcnow
from segflow.plan.planner import check_references
from segflow.store.duckdb.changes import MembershipChangeLog
from segflow.store.duckdb.sql import quote_ident, quote_str


class SegmentRegistry:
    """Current and past versions of every segment and priority group; a save that
    changes nothing is a no-op.  ``current()`` holds each group's resolved members as
    segments (``model.groups``), so every reader evaluates them like any segment."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def current(self) -> dict[str, Segment]:
        return expand(self.own(), self.groups().values())

    def own(self) -> dict[str, Segment]:
        """The saved segments alone, without groups' resolved members."""
        out: dict[str, Segment] = {}
        for definition, version in self._latest("segment_definitions", "segment_id"):
            seg = parse_segment(orjson.loads(definition), STORED)
            out[seg.id] = _with_version(seg, int(version))
        return out

    def _latest(self, table: str, key: str) -> list[tuple[str, int]]:
        """(definition, version) of the newest version of each id in a definitions
        table, ids whose newest version is a deletion left out (``table`` and ``key``
        are this module's constants, never input)."""
        rows = self.con.execute(
            f"""
            SELECT d.definition, d.version, d.deleted FROM {table} d
            JOIN (SELECT {key}, max(version) AS v FROM {table} GROUP BY {key}) m
              ON d.{key} = m.{key} AND d.version = m.v
            ORDER BY d.{key}
            """
        ).fetchall()
        return [(definition, int(version)) for definition, version, deleted in rows if not deleted]

    def get(self, segment_id: str) -> Segment | None:
        return self.current().get(segment_id)

    def history(self, segment_id: str) -> list[tuple[int, datetime, bool]]:
        return self._history("segment_definitions", "segment_id", segment_id)

    def _history(self, table: str, key: str, id_: str) -> list[tuple[int, datetime, bool]]:
        """(version, saved at, deleted) of every version of one id in a definitions
        table (``table`` and ``key`` are this module's constants, never input)."""
        rows = self.con.execute(
            f"SELECT version, saved_at, deleted FROM {table} WHERE {key} = ? ORDER BY version",
            [id_],
        ).fetchall()
        return [(int(v), t, bool(d)) for v, t, d in rows]

    def _next_version(self, table: str, key: str, id_: str) -> int:
        """The version a new save of one id in a definitions table gets."""
        row = self.con.execute(
            f"SELECT coalesce(max(version), 0) FROM {table} WHERE {key} = ?", [id_]
        ).fetchone()
        return int(row[0]) + 1 if row else 1

    def versions(self, segment_id: str) -> list[tuple[int, datetime, dict[str, Any]]]:
        """(version, saved at, definition as stored) of every saved version, newest
        first (deletions are not versions)."""
        rows = self.con.execute(
            "SELECT version, saved_at, definition FROM segment_definitions"
            " WHERE segment_id = ? AND NOT deleted ORDER BY version DESC",
            [segment_id],
        ).fetchall()
        return [(int(v), t, orjson.loads(d)) for v, t, d in rows]

    def saved_versions(self, segment_id: str) -> dict[int, tuple[Segment, datetime]]:
        """Every saved version of a segment (deletions left out) with when it was saved:
        what was in force at a past instant (its holdout, for experiment reports)."""
        rows = self.con.execute(
            "SELECT definition, version, saved_at FROM segment_definitions"
            " WHERE segment_id = ? AND NOT deleted ORDER BY version",
            [segment_id],
        ).fetchall()
        return {
            int(v): (_with_version(parse_segment(orjson.loads(d), STORED), int(v)), t)
            for d, v, t in rows
        }

    def check(
        self,
        segments: Iterable[Segment],
        groups: Iterable[Group] = (),
        paths: Mapping[str, str] | None = None,
    ) -> dict[str, Segment]:
        """The registry (segments and resolved members) as it would be after saving
        ``segments`` and ``groups``; raises on unknown references, cycles (with the
        cycle's path), and group members that are unknown or in two groups.  ``paths``:
        group id -> its document's path prefix, for the problems' paths."""
        merged = self.own()
        for s in segments:
            merged[s.id] = s
        all_groups = self.groups()
        for g in groups:
            all_groups[g.id] = g
        problems = membership_problems(all_groups, merged, paths)
        if problems:
            raise DefinitionError(problems)
        out = expand(merged, all_groups.values())
        check_references(out)
        return out

    def groups(self) -> dict[str, Group]:
        """The current version of every priority group."""
        out: dict[str, Group] = {}
        for definition, version in self._latest("group_definitions", "group_id"):
            g = parse_group(orjson.loads(definition))
            out[g.id] = with_version(g, version)
        return out

    def save_groups(
        self, groups: Iterable[Group], paths: Mapping[str, str] | None = None
    ) -> list[tuple[Group, str]]:
        """Save new versions of groups atomically (each checked against the segments
        and the other groups); returns each with created|updated|unchanged."""
        items = list(groups)
        self.check((), items, paths)
        current = self.groups()
        out: list[tuple[Group, str]] = []
        now = utcnow()
        self.con.execute("BEGIN TRANSACTION")
        try:
            for g in items:
                old = current.get(g.id)
                if old is not None and old.fingerprint() == g.fingerprint():
                    out.append((old, "unchanged"))
                    continue
                saved = with_version(g, self._next_version("group_definitions", "group_id", g.id))
                self.con.execute(
                    "INSERT INTO group_definitions (group_id, version, definition, fingerprint,"
                    " saved_at, deleted) VALUES (?, ?, ?, ?, ?, FALSE)",
                    [g.id, saved.version, orjson.dumps(saved.to_dict()).decode(),
                     g.fingerprint(), now],
                )  # fmt: skip
                out.append((saved, "created" if old is None else "updated"))
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return out

    def delete_group(self, group_id: str) -> Group:
        """Mark a group deleted; a group whose resolved members a segment still
        references refuses, naming those segments."""
        groups = self.groups()
        g = groups.get(group_id)
        if g is None:
            raise KeyError(group_id)
        ids = set(g.resolved_ids())
        users = sorted(
            s.id
            for s in self.own().values()
            if s.condition is not None and s.mode != "static" and ids & _references(s)
        )
        if users:
            raise DefinitionError(
                [Problem("in_segment", f"group {group_id!r} is used by: {', '.join(users)}")]
            )
        body = with_version(g, g.version + 1).to_dict()
        self.con.execute(
            "INSERT INTO group_definitions (group_id, version, definition, fingerprint,"
            " saved_at, deleted) VALUES (?, ?, ?, ?, ?, TRUE)",
            [group_id, g.version + 1, orjson.dumps(body).decode(), "", utcnow()],
        )
        self.con.execute(
            "DELETE FROM memberships WHERE segment_id IN (SELECT unnest(?::VARCHAR[]))",
            [sorted(ids)],
        )
        return g

    def group_history(self, group_id: str) -> list[tuple[int, datetime, bool]]:
        return self._history("group_definitions", "group_id", group_id)

    def save(self, segments: Iterable[Segment]) -> list[tuple[Segment, str]]:
        """Save new versions atomically; returns each segment with created|updated|unchanged."""
        items = list(segments)
        self.check(items)
        current = self.own()
        out: list[tuple[Segment, str]] = []
        now = utcnow()
        self.con.execute("BEGIN TRANSACTION")
        try:
            for seg in items:
                old = current.get(seg.id)
                if old is not None and old.definition_fingerprint() == seg.definition_fingerprint():
                    out.append((old, "unchanged"))
                    continue
                version = self._next_version("segment_definitions", "segment_id", seg.id)
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
        """Mark a segment deleted; protected ones, ones still referenced and ones a
        group lists refuse (a group's resolved member is deleted with its group)."""
        current = self.current()
        seg = current.get(segment_id)
        if seg is None:
            raise KeyError(segment_id)
        resolved = split_resolved(segment_id)
        if resolved is not None:
            raise DefinitionError(
                [
                    Problem(
                        "group",
                        f"{segment_id!r} is group {resolved[0]!r}'s resolution of"
                        f" {resolved[1]!r}: change or delete the group instead",
                    )
                ]
            )
        listing = group_of(self.groups().values(), segment_id)
        if listing is not None:
            raise DefinitionError(
                [
                    Problem(
                        "group",
                        f"{segment_id!r} is listed by group {listing.id!r};"
                        " remove it from the group first",
                    )
                ]
            )
        if seg.protected and not force:
            raise DefinitionError(
                [Problem("protected", f"segment {segment_id!r} is protected from deletion")]
            )
        users = sorted(
            s.id
            for s in current.values()
            if s.id != segment_id
            and s.group is None
            and s.condition is not None
            and segment_id in _references(s)
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

    def static_members(self, segment_id: str) -> list[str]:
        """A static segment's stored snapshot, in profile id order."""
        rows = self.con.execute(
            "SELECT profile_id FROM static_members WHERE segment_id = ? ORDER BY profile_id",
            [segment_id],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def store_evaluation(
        self,
        table: str,
        columns: Mapping[str, str],
        versions: Mapping[str, int],
        as_of: datetime,
    ) -> None:
        """Replace each segment's memberships by the profiles whose boolean column of
        the evaluated ``table`` holds (``columns``: segment id -> column), and log the
        evaluation's size, in one transaction."""
        now = utcnow()
        source = quote_ident(table)
        self.con.execute("BEGIN TRANSACTION")
        try:
            for sid, column in columns.items():
                version = versions[sid]
                where = quote_ident(column)
                self.con.execute("DELETE FROM memberships WHERE segment_id = ?", [sid])
                self.con.execute(
                    "INSERT INTO memberships (segment_id, profile_id, version, evaluated_at) "
                    f"SELECT ?, profile_id, ?, ? FROM {source} WHERE {where}",
                    [sid, version, as_of],
                )
                self.con.execute(
                    "INSERT INTO evaluations (segment_id, version, evaluated_at, as_of, size) "
                    f"SELECT ?, ?, ?, ?, count(*) FROM {source} WHERE {where}",
                    [sid, version, now, as_of],
                )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def record_sizes(
        self, sizes: Mapping[str, int], versions: Mapping[str, int], as_of: datetime
    ) -> None:
        """Log each segment's size as evaluated as of ``as_of`` (no memberships kept:
        a size in the past, for the size history)."""
        now = utcnow()
        self.con.executemany(
            "INSERT INTO evaluations (segment_id, version, evaluated_at, as_of, size)"
            " VALUES (?, ?, ?, ?, ?)",
            [[sid, versions[sid], now, as_of, int(n)] for sid, n in sizes.items()],
        )

    def last_evaluated(self) -> dict[str, datetime]:
        """Each segment's latest batch evaluation instant (``as_of``)."""
        rows = self.con.execute(
            "SELECT segment_id, max(as_of) FROM evaluations GROUP BY segment_id"
        ).fetchall()
        return {str(s): t for s, t in rows}

    def last_sizes(self) -> dict[str, int]:
        """Each segment's size at its latest batch evaluation."""
        rows = self.con.execute(
            "SELECT segment_id, arg_max(size, (as_of, evaluated_at)) FROM evaluations"
            " GROUP BY segment_id"
        ).fetchall()
        return {str(s): int(n) for s, n in rows}

    def size_history(
        self, segment_id: str, points: int
    ) -> tuple[list[tuple[datetime, int]], list[tuple[datetime, int]]]:
        """(sizes at batch evaluations before the change log starts, running size from
        the log at each instant evenly thinned to about ``points``)."""
        MembershipChangeLog(self.con)
        logged = self.con.execute(
            """
            WITH r AS (
                SELECT "at", seq,
                       sum(CASE WHEN entered THEN 1 ELSE -1 END) OVER (ORDER BY seq) AS size
                FROM membership_changes WHERE segment_id = $sid),
            g AS (SELECT "at", arg_max(size, seq) AS size FROM r GROUP BY "at"),
            n AS (SELECT *, row_number() OVER (ORDER BY "at") AS rn, count(*) OVER () AS total
                  FROM g)
            SELECT "at", size FROM n
            WHERE total <= $points OR rn % ceil(total / $points) = 0 OR rn = total
            ORDER BY "at"
            """,
            {"sid": segment_id, "points": points},
        ).fetchall()
        first = logged[0][0] if logged else None
        rows = self.con.execute(
            "SELECT as_of, size FROM evaluations WHERE segment_id = $sid"
            " AND ($first IS NULL OR as_of < $first) ORDER BY as_of, evaluated_at",
            {"sid": segment_id, "first": first},
        ).fetchall()
        return [(t, int(n)) for t, n in rows], [(t, int(n)) for t, n in logged]

    def export_members(
        self,
        members: list[str],
        path: Path,
        fmt: str,
        held_out: Collection[str] | None = None,
        labels: Mapping[str, str] | None = None,
        head: pa.Table | None = None,
    ) -> None:
        """Write ``members`` with their current traits, one column per trait (typed where
        every value of the trait has one kind; otherwise text), to CSV or Parquet: the one
        layout of both the CLI's and the HTTP export.  With ``held_out`` (the members in
        the segment's holdout) a boolean ``held_out`` column follows the profile id; with
        ``labels`` (a group's export: member -> the segment it resolves to) a ``segment``
        column does; ``head``'s columns (one row per member, in the same order) come next."""
        con = self.con
        ids: dict[str, pa.Array[Any]] = {"profile_id": pa.array(members, pa.string())}
        if held_out is not None:
            ids["held_out"] = pa.array([m in held_out for m in members], pa.bool_())
        if labels is not None:
            ids["segment"] = pa.array([labels[m] for m in members], pa.string())
        if head is not None:
            for name in head.column_names:
                ids[name] = head.column(name).combine_chunks()
        con.register("_sf_export_ids", pa.table(ids))
        try:
            keys = con.execute(
                "SELECT key, list(DISTINCT kind) FROM current_traits"
                " SEMI JOIN _sf_export_ids USING (profile_id) GROUP BY key ORDER BY key"
            ).fetchall()
            first_names = list(ids)
            taken = {n.lower() for n in first_names}
            columns: list[str] = []
            params: list[Any] = []
            for key, kinds in keys:
                alias = str(key)
                while alias.lower() in taken:
                    alias = f"traits.{alias}"
                taken.add(alias.lower())
                kind = kinds[0] if len(kinds) == 1 else None
                value = _KIND_COLUMN.get(kind or "") or (
                    "coalesce(str, CAST(num AS VARCHAR), CAST(bool AS VARCHAR),"
                    " CAST(json AS VARCHAR))"
                )
                columns.append(f"max({value}) FILTER (WHERE key = ?) AS {quote_ident(alias)}")
                params.append(key)
            first = [f"i.{quote_ident(n)}" for n in first_names]
            select = ", ".join([*first, *columns])
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE _sf_export AS SELECT {select} FROM _sf_export_ids i"
                " LEFT JOIN (SELECT * FROM current_traits SEMI JOIN _sf_export_ids"
                f" USING (profile_id)) t USING (profile_id) GROUP BY {', '.join(first)}"
                " ORDER BY i.profile_id",
                params,
            )
            option = "FORMAT PARQUET" if fmt == "parquet" else "FORMAT CSV, HEADER"
            con.execute(f"COPY _sf_export TO {quote_str(str(path))} ({option})")
        finally:
            con.execute("DROP TABLE IF EXISTS _sf_export")
            con.unregister("_sf_export_ids")


_KIND_COLUMN: Final = {"number": "num", "string": "str", "bool": "bool"}


def _references(seg: Segment) -> set[str]:
    from segflow.model.definition import referenced_segments

    return referenced_segments(seg.condition) if seg.condition is not None else set()


def _with_version(seg: Segment, version: int) -> Segment:
    from dataclasses import replace

    return replace(seg, version=version)
