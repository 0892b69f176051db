"""The stored membership change log: every enter/exit the real-time evaluator emits.

One row per change: ``(seq, segment_id, profile_id, entered, at, reason, version,
recorded_at)``; ``seq`` grows with recording order (a cursor for readers), ``at`` is the
exact instant of the flip.  Recording is idempotent: a change already stored (same
segment, profile, instant, direction and definition version) is skipped, so replaying
the same events gives the same log with no duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

import duckdb
import pyarrow as pa

from segflow.model.changes import LoggedChange, Reason
from segflow.model.time import utcnow
from segflow.store.duckdb.marks import set_row

CHANGES_DDL: Final = """
CREATE TABLE IF NOT EXISTS membership_changes (
    seq         BIGINT NOT NULL,
    segment_id  VARCHAR NOT NULL,
    profile_id  VARCHAR NOT NULL,
    entered     BOOLEAN NOT NULL,
    "at"        TIMESTAMP NOT NULL,
    reason      VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    recorded_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS log_marks (
    name  VARCHAR PRIMARY KEY,
    seq   BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS live_marks (
    name  VARCHAR PRIMARY KEY,
    seq   BIGINT NOT NULL,
    "at"  TIMESTAMP NOT NULL
);
"""
"""Appended to the store schema (``store.duckdb.schema.DDL``)."""

COVERS_MARK: Final = "covers:"
"""Prefix of the marks saying from when the log holds a segment's memberships: the
instant the live evaluator first took it on (its seq is the version then)."""

_COLUMNS: Final = 'seq, segment_id, profile_id, entered, "at", reason, version, recorded_at'


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild a change log that carries a unique index on its five key columns
    without it (``append`` keeps repeats out itself), in one transaction."""
    (indexed,) = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'membership_changes'"
        " AND schema_name = 'main' AND database_name = current_database()"
        " AND constraint_type = 'UNIQUE'"
    ).fetchone() or (0,)
    if not indexed:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("ALTER TABLE membership_changes RENAME TO membership_changes_indexed")
        con.execute(CHANGES_DDL)
        con.execute(
            f"INSERT INTO membership_changes ({_COLUMNS})"
            f" SELECT {_COLUMNS} FROM membership_changes_indexed ORDER BY seq"
        )
        con.execute("DROP TABLE membership_changes_indexed")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _row(r: Sequence[object]) -> LoggedChange:
    seq, sid, pid, entered, at, reason, version, recorded = r
    assert isinstance(at, datetime) and isinstance(recorded, datetime)
    return LoggedChange(
        str(sid),
        str(pid),
        bool(entered),
        at,
        Reason.parse(str(reason)),
        int(version),  # type: ignore[call-overload]
        int(seq),  # type: ignore[call-overload]
        recorded,
    )


class MembershipChangeLog:
    """The ``membership_changes`` table on one DuckDB connection (one writer at a time)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        con.execute(CHANGES_DDL)

    def append(
        self, changes: Iterable[LoggedChange], recorded_at: datetime | None = None
    ) -> list[LoggedChange]:
        """Record changes in order (their ``seq`` and ``recorded_at`` are the log's to
        give); return the rows actually stored (those already in the log are skipped),
        in ``seq`` order.

        A change is the same as a logged one when segment, profile, instant, direction
        and version agree; such repeats (a replay after a restart) are left out by an
        anti-join over the logged rows within the new changes' instants, which zone
        maps find (the log is appended in about ``at`` order).  There is no unique
        index behind it: one writer appends (the store's connection), and keeping an
        index of five columns up to date costs more than the insert itself."""
        keyed: dict[tuple[str, str, datetime, bool, int], LoggedChange] = {}
        for r in changes:
            keyed.setdefault((r.segment_id, r.profile_id, r.at, r.entered, r.version), r)
        if not keyed:
            return []
        rows = list(keyed.values())
        reasons: list[Reason] = []
        for r in rows:
            try:
                reasons.append(Reason.parse(r.reason))
            except ValueError:
                raise ValueError(
                    f"change of {r.segment_id!r}/{r.profile_id!r}: bad reason {r.reason!r}"
                ) from None
        now = recorded_at or utcnow()
        n = len(rows)
        ats = [r.at for r in rows]
        table = pa.table(
            {
                "idx": pa.array(range(n), pa.int64()),
                "segment_id": pa.array([r.segment_id for r in rows], pa.string()),
                "profile_id": pa.array([r.profile_id for r in rows], pa.string()),
                "entered": pa.array([r.entered for r in rows], pa.bool_()),
                "at": pa.array(ats, pa.timestamp("us")),
                "reason": pa.array(reasons, pa.string()),
                "version": pa.array([r.version for r in rows], pa.int32()),
                "recorded_at": pa.array([now] * n, pa.timestamp("us")),
            }
        )
        con = self.con
        base = self.top()
        con.register("_sf_changes", table)
        try:
            (stored,) = con.execute(
                f"INSERT INTO membership_changes ({_COLUMNS})"
                " SELECT $base + row_number() OVER (ORDER BY c.idx), c.segment_id, c.profile_id,"
                ' c.entered, c."at", c.reason, c.version, c.recorded_at FROM _sf_changes c'
                " ANTI JOIN (SELECT * FROM membership_changes"
                '  WHERE "at" BETWEEN $first AND $last) m ON m.segment_id = c.segment_id'
                ' AND m.profile_id = c.profile_id AND m."at" = c."at"'
                " AND m.entered = c.entered AND m.version = c.version",
                {"base": base, "first": min(ats), "last": max(ats)},
            ).fetchone() or (0,)
        finally:
            con.unregister("_sf_changes")
        if not stored:
            return []
        set_row(
            con,
            "UPDATE log_marks SET seq = greatest(seq, $seq) WHERE name = 'membership_changes'",
            "INSERT INTO log_marks VALUES ('membership_changes', $seq)",
            {"seq": base + stored},
        )
        if stored == n:  # nothing was logged before (the live case): no read-back
            return [
                LoggedChange(r.segment_id, r.profile_id, r.entered, r.at, why, r.version, i, now)
                for i, (r, why) in enumerate(zip(rows, reasons, strict=True), base + 1)
            ]
        return self.query(after_seq=base)

    def top(self) -> int:
        """The highest ``seq`` ever given: the mark, kept by ``append`` (``max(seq)``
        reads the whole column on every append), else the table's (a log that has no
        mark yet)."""
        row = self.con.execute(
            "SELECT seq FROM log_marks WHERE name = 'membership_changes'"
        ).fetchone()
        if row is None:
            row = self.con.execute("SELECT max(seq) FROM membership_changes").fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def query(
        self,
        *,
        segment_id: str | None = None,
        profile_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[LoggedChange]:
        """Changes in ``seq`` order, filtered: ``since <= at <= until``, ``seq > after_seq``
        (a cursor: pass the last seq read to page on)."""
        where: list[str] = []
        params: list[object] = []
        for cond, value in (
            ("segment_id = ?", segment_id),
            ("profile_id = ?", profile_id),
            ('"at" >= ?', since),
            ('"at" <= ?', until),
            ("seq > ?", after_seq),
        ):
            if value is not None:
                where.append(cond)
                params.append(value)
        sql = f"SELECT {_COLUMNS} FROM membership_changes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0, got {limit}")
            sql += " LIMIT ?"
            params.append(limit)
        return [_row(r) for r in self.con.execute(sql, params).fetchall()]

    def mark(self, name: str = "live") -> tuple[int, datetime] | None:
        """Where the log is complete: every input with ``seq <= mark.seq`` is reflected up
        to the instant ``mark.at`` (None before the first mark)."""
        row = self.con.execute('SELECT seq, "at" FROM live_marks WHERE name = ?', [name]).fetchone()
        return (int(row[0]), row[1]) if row else None

    def set_mark(self, seq: int, at: datetime, name: str = "live") -> None:
        set_row(
            self.con,
            'UPDATE live_marks SET seq = $seq, "at" = $at WHERE name = $name',
            'INSERT INTO live_marks (name, seq, "at") VALUES ($name, $seq, $at)',
            {"name": name, "seq": seq, "at": at},
        )

    def cover(self, segment_ids: Mapping[str, int], at: datetime) -> None:
        """Note that the log holds the memberships of ``segment_ids`` (id -> version)
        from ``at`` on, for those it held none of before: the first instant is kept, so
        a segment's coverage starts when the live evaluator first took it on."""
        if not segment_ids:
            return
        rows = pa.table(
            {
                "name": pa.array([COVERS_MARK + s for s in segment_ids], pa.string()),
                "seq": pa.array(list(segment_ids.values()), pa.int64()),
            }
        )
        self.con.register("_sf_covers", rows)
        try:
            self.con.execute(
                'INSERT INTO live_marks (name, seq, "at") SELECT c.name, c.seq, $at'
                " FROM _sf_covers c ANTI JOIN live_marks m USING (name)",
                {"at": at},
            )
        finally:
            self.con.unregister("_sf_covers")

    def covered_since(self, segment_ids: Sequence[str]) -> dict[str, datetime]:
        """Segment -> the instant from which the log holds its memberships (segments
        the live evaluator never took on are left out)."""
        if not segment_ids:
            return {}
        rows = self.con.execute(
            'SELECT name, "at" FROM live_marks WHERE name IN (SELECT unnest($names))',
            {"names": [COVERS_MARK + s for s in segment_ids]},
        ).fetchall()
        return {str(name)[len(COVERS_MARK) :]: at for name, at in rows}

    def count(self) -> int:
        row = self.con.execute("SELECT count(*) FROM membership_changes").fetchone()
        return int(row[0]) if row else 0

    def last_at(self) -> datetime | None:
        """The latest instant recorded (None for an empty log)."""
        row = self.con.execute('SELECT max("at") FROM membership_changes').fetchone()
        return row[0] if row and row[0] is not None else None

    def current(self) -> dict[tuple[str, str], tuple[bool, int, datetime]]:
        """(segment, profile) -> (in?, version, at) per the latest change of each pair:
        the memberships the log says hold now."""
        rows = self.con.execute(
            'SELECT segment_id, profile_id, entered, version, "at" FROM membership_changes'
            " QUALIFY row_number() OVER (PARTITION BY segment_id, profile_id"
            ' ORDER BY "at" DESC, seq DESC) = 1'
        ).fetchall()
        return {(str(s), str(p)): (bool(e), int(v), t) for s, p, e, v, t in rows}


if TYPE_CHECKING:
    from segflow.store.protocols import ChangeLog

    def _is_a_change_log(log: MembershipChangeLog) -> ChangeLog:
        return log


__all__ = [
    "CHANGES_DDL",
    "COVERS_MARK",
    "MembershipChangeLog",
    "migrate",
]
