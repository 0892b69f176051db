"""A flat CSV or Parquet event table -> the staging table, entirely in DuckDB: one pass
over the file checks every row and stages it in a temporary table (a Parquet file too
large for memory is read by each step instead)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import duckdb

from segflow.model.events import ALIASES, MAX_PROBLEMS, IngestError, IngestProblem, IngestReport
from segflow.model.time import utcnow
from segflow.store.duckdb.fields import Fields, Leaf, LoadTarget
from segflow.store.duckdb.load import CORE, ROOTS, STAGE, VALID, Load
from segflow.store.duckdb.sql import quote_ident, quote_str
from segflow.store.protocols import Progress, StrPath

STEPS: Final = 5
"""Progress steps of a table load."""

_TABLE_COLUMNS: Final[dict[str, str]] = {
    **{spelling: name for name, pair in ALIASES.items() for spelling in pair},
    "type": "type",
    "event": "event",
    "timestamp": "timestamp",
    "properties": "properties",
    "context": "context",
    "traits": "traits",
}
_TEMPORAL: Final = (
    "TIMESTAMP",
    "DATE",
    "TIMESTAMP_NS",
    "TIMESTAMP_MS",
    "TIMESTAMP_S",
    "TIMESTAMP WITH TIME ZONE",
)
_NUMERIC: Final = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)
_CHECKED: Final = "_sf_checked"
"""The view over the source computing each row's fields, ``_bad`` and ``_problems``."""
STAGE_MEMORY_SHARE: Final = 3
"""A Parquet file is staged in a temporary table when its rows take at most this part
of DuckDB's ``memory_limit`` (the insert's sort needs as much again); a larger one is
read through views by every step instead of spilling the stage to disk."""
_SLOT_BYTES: Final = 16
"""Bytes an uncompressed value takes in a DuckDB table (a string's slot; numbers less):
the stage's size is estimated as rows x columns x this."""
_UNITS: Final = {
    **{"": 1, "B": 1, "BYTES": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12},
    **{"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40, "PIB": 1 << 50},
}
_KNOWN_COLUMNS: Final = (
    "message_id, type, event, user_id, anonymous_id, previous_id, group_id, timestamp,"
    " received_at, sent_at, properties, context, traits, or properties.X, context.X, traits.X"
)


class TableStager:
    """A CSV or Parquet event table -> the staging table, in one DuckDB scan.

    Every row gets its problems as a list (so one query reports them all with row
    numbers); dotted columns are staged raw and typed once the whole column has
    been seen (CSV cells are text: a column is BOOLEAN if every cell is true/false,
    DOUBLE if every cell is a number, else VARCHAR).
    """

    def __init__(
        self,
        store: LoadTarget,
        path: StrPath,
        skip_invalid: bool,
        stage_bytes: int | None = None,
    ) -> None:
        self.store = store
        self.con = store.con
        self.path = os.fspath(path)
        self.source = self.path
        self.skip_invalid = skip_invalid
        self.csv = Path(self.path).suffix.lower() not in (".parquet", ".pq")
        self.stage_bytes = stage_bytes
        """Most bytes a Parquet file's stage may take to be staged in a table (None: a
        ``STAGE_MEMORY_SHARE`` part of ``memory_limit``); a CSV's always is."""

    def fail(self, problems: list[IngestProblem]) -> IngestError:
        return IngestError([p.at(self.source) for p in problems])

    def run(self, progress: Progress | None) -> IngestReport:
        started = time.perf_counter()
        step = _stepper(progress)
        try:
            self._read_source()
            core, dotted, roots = self._columns()
            self._stage(core, dotted, roots)
            step()
            report = self._problems()
            step()
            if report.problem_count and not self.skip_invalid:
                report.rejected.append(self.source)
            else:
                if self.csv:  # the text is staged: free it
                    self.con.execute(
                        f"DROP VIEW {_CHECKED}; DROP VIEW _sf_srcv; DROP TABLE _sf_src"
                    )
                self.con.execute(
                    f"CREATE OR REPLACE TEMP VIEW {VALID} AS SELECT * EXCLUDE (_bad) FROM {STAGE}"
                    + (" WHERE NOT _bad" if report.invalid else "")
                )
                docs = {r: (f"s._j_{r}", "") for r in roots}
                fields = Fields(self.store, Load(), dotted, docs, self.csv, step=step)
                self.store.commit_load(fields, report)
                step()
        finally:
            self.store.drop_temps()
        report.seconds = time.perf_counter() - started
        return report

    def _read_source(self) -> None:
        lit = quote_str(self.path)
        try:
            if self.csv:
                self.con.execute(
                    "CREATE OR REPLACE TEMP TABLE _sf_src AS SELECT * FROM"
                    f" read_csv({lit}, header = true, all_varchar = true)"
                )
                self.con.execute(
                    "CREATE OR REPLACE TEMP VIEW _sf_srcv AS SELECT *, rowid + 1 AS _row"
                    " FROM _sf_src"
                )
            else:
                self.con.execute(
                    "CREATE OR REPLACE TEMP VIEW _sf_srcv AS SELECT * EXCLUDE"
                    " (file_row_number), file_row_number + 1 AS _row FROM"
                    f" read_parquet({lit}, file_row_number = true)"
                )
        except duckdb.Error as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise self.fail([IngestProblem("", f"cannot read: {first}")]) from e

    def _columns(self) -> tuple[dict[str, tuple[str, str]], list[Leaf], list[str]]:
        """Map the file's columns to core fields, dotted leaves and JSON columns."""
        described = self.con.execute("DESCRIBE SELECT * FROM _sf_srcv").fetchall()
        problems: list[IngestProblem] = []
        core: dict[str, tuple[str, str]] = {}  # field -> (column, type)
        dotted: list[Leaf] = []
        for name, typ, *_ in described:
            if name == "_row":
                continue
            col = f"s.{quote_ident(name)}"
            base = typ.split("(")[0]
            field_name = _TABLE_COLUMNS.get(name)
            if field_name is not None:
                if field_name in core:
                    other = core[field_name][0]
                    problems.append(IngestProblem(name, f"duplicates column {other!r}"))
                    continue
                core[field_name] = (name, typ)
                if field_name in ROOTS and base not in ("VARCHAR", "JSON", "STRUCT", "MAP"):
                    problems.append(
                        IngestProblem(name, f"expected JSON text or a struct, got {typ}")
                    )
                continue
            root, dot, rest = name.partition(".")
            if root not in ROOTS or not dot:
                problems.append(IngestProblem(name, f"unknown column (expected {_KNOWN_COLUMNS})"))
                continue
            if "" in rest.split("."):
                problems.append(IngestProblem(name, "empty key in dotted column name"))
                continue
            if base == "BOOLEAN":
                dotted.append(Leaf(name, "BOOLEAN", col))
            elif base in _NUMERIC:
                dotted.append(Leaf(name, "DOUBLE", f"CAST({col} AS DOUBLE)"))
            elif base == "VARCHAR":
                dotted.append(Leaf(name, "VARCHAR", col))
            elif typ.endswith("]") or base in ("STRUCT", "MAP", "UNION", "JSON"):
                dotted.append(Leaf(name, "JSON", f"CAST(to_json({col}) AS VARCHAR)"))
            else:
                dotted.append(Leaf(name, "VARCHAR", f"CAST({col} AS VARCHAR)"))
        if "timestamp" not in core:
            problems.append(IngestProblem("timestamp", "missing column"))
        if "user_id" not in core and "anonymous_id" not in core:
            problems.append(
                IngestProblem("user_id", "missing column (need user_id or anonymous_id)")
            )
        for name in ("timestamp", "received_at", "sent_at"):
            if name in core:
                col_name, typ = core[name]
                if typ.split("(")[0] not in ("VARCHAR", *_TEMPORAL):
                    problems.append(
                        IngestProblem(col_name, f"expected ISO 8601 text or a timestamp, got {typ}")
                    )
        if problems:
            raise self.fail(problems)
        roots = [r for r in ROOTS if r in core]
        return core, dotted, roots

    def _stage(
        self, core: dict[str, tuple[str, str]], dotted: list[Leaf], roots: list[str]
    ) -> None:
        """``STAGE``: the source's normalised core fields, whether the row is bad, the
        raw dotted values and the JSON columns.  Read and checked once into a temporary
        table that every later step reads (a CSV always: parsing is the expensive
        part; a Parquet file that fits ``stage_bytes``), else a view over the file
        that each step reads again (100M rows do not have to fit anywhere).  Each
        row's problems are only listed by the ``_CHECKED`` view, for bad rows."""

        def col(name: str) -> str | None:
            return f"s.{quote_ident(core[name][0])}" if name in core else None

        def text(name: str) -> str:
            c = col(name)
            return f"NULLIF(CAST({c} AS VARCHAR), '')" if c else "NULL::VARCHAR"

        def when(name: str) -> tuple[str, str]:
            """(raw text, naive UTC timestamp) of a time column (session zone is UTC)."""
            c = col(name)
            if c is None:
                return "NULL::VARCHAR", "NULL::TIMESTAMP"
            if core[name][1] == "VARCHAR":
                raw = f"NULLIF(trim({c}), '')"
                return raw, f"CAST(TRY_CAST({raw} AS TIMESTAMPTZ) AS TIMESTAMP)"
            return f"CAST({c} AS VARCHAR)", f"CAST({c} AS TIMESTAMP)"

        def nm(name: str) -> str:
            return quote_str(core[name][0] if name in core else name)

        sel: dict[str, str] = {}
        for name in ("user_id", "anonymous_id", "previous_id", "group_id", "event"):
            sel[name] = text(name)
        typ = sel["type"] = f"lower({text('type')})" if "type" in core else "'track'"
        ts_raw, ts = when("timestamp")
        rc_raw, rc = when("received_at")
        st_raw, st = when("sent_at")
        sel["timestamp"] = ts
        now = quote_str(utcnow().isoformat(sep=" "))
        sel["received_at"] = f"coalesce({rc}, CAST({now} AS TIMESTAMP))"
        sel["sent_at"] = st
        json_cols: dict[str, str] = {}
        for root in roots:
            c = col(root)
            base = core[root][1].split("(")[0]
            json_cols[root] = (
                f"CAST(to_json({c}) AS VARCHAR)" if base in ("STRUCT", "MAP") else f"{c}"
            )
        content = [ts_raw, typ, *(sel[k] for k in ("event", "user_id", "anonymous_id"))]
        content += [sel["previous_id"], sel["group_id"], *(lf.value for lf in dotted)]
        content += list(json_cols.values())
        derived = f"'h:' || md5(CAST(json_array({', '.join(content)}) AS VARCHAR))"
        sel["message_id"] = f"coalesce({text('message_id')}, {derived})"

        known = "('track', 'identify', 'page', 'screen', 'alias', 'group')"
        uid, aid = sel["user_id"], sel["anonymous_id"]
        checks: list[tuple[str, str, str]] = [  # (condition, field, message SQL)
            (f"{ts_raw} IS NULL", nm("timestamp"), "'missing'"),
            (
                f"{ts_raw} IS NOT NULL AND {ts} IS NULL",
                nm("timestamp"),
                f"'not an ISO 8601 timestamp: ' || {ts_raw}",
            ),
            (f"{typ} IS NULL", nm("type"), "'missing'"),
            (f"{typ} NOT IN {known}", nm("type"), f"'unknown message type \"' || {typ} || '\"'"),
            (
                f"{typ} = 'track' AND {sel['event']} IS NULL",
                nm("event"),
                "'missing (required for track)'",
            ),
            (
                f"{typ} = 'alias' AND {sel['previous_id']} IS NULL",
                nm("previous_id"),
                "'missing (alias needs previous_id)'",
            ),
            (
                f"{typ} = 'alias' AND {uid} IS NULL",
                nm("user_id"),
                "'missing (alias needs user_id)'",
            ),
            (
                f"{typ} IS DISTINCT FROM 'alias' AND {uid} IS NULL AND {aid} IS NULL",
                nm("user_id"),
                "'missing (a message needs user_id or anonymous_id)'",
            ),
            (
                f"{typ} = 'group' AND {sel['group_id']} IS NULL",
                nm("group_id"),
                "'missing (required for group)'",
            ),
        ]
        for name, raw, parsed in (("received_at", rc_raw, rc), ("sent_at", st_raw, st)):
            checks.append(
                (
                    f"{raw} IS NOT NULL AND {parsed} IS NULL",
                    nm(name),
                    f"'not an ISO 8601 timestamp: ' || {raw}",
                )
            )
        for name, expr in json_cols.items():
            checks.append((f"NOT json_valid({expr})", nm(name), "'not valid JSON'"))
            checks.append(
                (
                    f"json_valid({expr}) AND json_type({expr}) NOT IN ('OBJECT', 'NULL')",
                    nm(name),
                    f"'expected an object, got ' || lower(json_type({expr}))",
                )
            )
        bad = " OR ".join(f"coalesce({c}, FALSE)" for c, _, _ in checks)
        listed = ", ".join(
            f"CASE WHEN coalesce({c}, FALSE) THEN {{'f': {f}, 'm': {m}}} END" for c, f, m in checks
        )
        items = ["s._row AS _line"]
        items += [f"{sel[n]} AS {quote_ident(n)}" for n, _, _ in CORE]
        items += [f"{expr} AS _j_{r}" for r, expr in json_cols.items()]
        for i, lf in enumerate(dotted):
            items.append(f"{lf.value} AS _d{i}")
            lf.value = f"s._d{i}"
        items.append(f"({bad}) AS _bad")
        items.append(f"list_filter([{listed}], x -> x IS NOT NULL) AS _problems")
        kind = "TABLE" if self._fits(len(items)) else "VIEW"
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {_CHECKED} AS SELECT {', '.join(items)} FROM _sf_srcv s;"
            f" CREATE OR REPLACE TEMP {kind} {STAGE} AS SELECT * EXCLUDE (_problems)"
            f" FROM {_CHECKED}"
        )

    def _fits(self, columns: int) -> bool:
        """Whether to stage the rows in a table (see ``_stage``)."""
        if self.csv:
            return True
        limit = self.stage_bytes
        if limit is None:
            limit = _memory_limit(self.con) // STAGE_MEMORY_SHARE
        row = self.con.execute(f"SELECT count(*) FROM read_parquet({quote_str(self.path)})")
        (rows,) = row.fetchone() or (0,)
        return int(rows) * columns * _SLOT_BYTES <= limit

    def _problems(self) -> IngestReport:
        """Counts, and the problems of the first ``MAX_PROBLEMS`` bad rows (the list of
        problems is only computed for bad rows)."""
        read, bad = self.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE _bad) FROM {STAGE}"
        ).fetchone() or (0, 0)
        total = 0
        rows: list[tuple[int, list[dict[str, str]]]] = []
        if bad:
            rows = self.con.execute(
                f"SELECT _line, _problems FROM {_CHECKED} WHERE _bad"
                f" ORDER BY _line LIMIT {MAX_PROBLEMS}"
            ).fetchall()
            total = sum(len(ps) for _, ps in rows)
            if bad > len(rows):
                (total,) = self.con.execute(
                    f"SELECT sum(len(_problems)) FROM {_CHECKED} WHERE _bad"
                ).fetchone() or (0,)
        problems = [
            IngestProblem(p["f"], p["m"], self.source, row + 1 if self.csv else None, int(row))
            for row, ps in rows
            for p in ps
        ]
        return IngestReport(
            sources=[self.source],
            read=int(read),
            invalid=int(bad),
            problems=problems[:MAX_PROBLEMS],
            problem_count=int(total),
        )


def _memory_limit(con: duckdb.DuckDBPyConnection) -> int:
    """DuckDB's ``memory_limit`` in bytes (shown as text such as ``2.7 GiB``)."""
    (text,) = con.execute("SELECT current_setting('memory_limit')").fetchone() or ("",)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(text))
    if m is None or m.group(2).upper() not in _UNITS:
        return 1 << 62  # unknown: no limit to keep under
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _stepper(progress: Progress | None) -> Callable[[], None]:
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, STEPS)

    if progress is not None:
        progress(0, STEPS)
    return step
