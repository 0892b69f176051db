"""The embedded DuckDB store: event ingestion, identity resolution and reads.

Every load stages its rows first (``staging_messages`` for JSON Lines and in-memory
messages, ``staging_tables`` for CSV/Parquet) and commits them in one transaction, so a
file is stored whole or not at all; ``fields`` types the dynamic fields on the way in.
Rows whose ``message_id`` is stored already (or repeats within the load) are dropped
with anti-joins (no index on the 100M-row events table); identities are resolved
set-based (``identity.connected_components``).
"""

from __future__ import annotations

import gc
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import duckdb
import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from segflow.model.events import IngestError, IngestProblem, IngestReport, Merge, Message
from segflow.model.time import utcnow
from segflow.store.duckdb.catalog import has_table, table_columns
from segflow.store.duckdb.changes import migrate as migrate_change_log
from segflow.store.duckdb.clustering import (
    MARKS,
    TAIL_CHUNK_ROWS,
    clustered_upto,
    compact_tail,
    newest,
    note_sorted_load,
    rewrite_sorted,
    set_clustered,
)
from segflow.store.duckdb.fields import Fields
from segflow.store.duckdb.identity import connected_components
from segflow.store.duckdb.load import NEW, ROOTS, TRAIT_STAGE, VALID, Load
from segflow.store.duckdb.loaded_files import LoadedFile, file_digest, is_loaded, record_loaded
from segflow.store.duckdb.marks import events_seq, raise_events_seq
from segflow.store.duckdb.message_index import MessageIndex
from segflow.store.duckdb.numbers import NEXT_NUMBER, number_profiles
from segflow.store.duckdb.schema import DDL, LINK_TRAITS
from segflow.store.duckdb.sessions import TABLE as SESSIONS
from segflow.store.duckdb.sessions import move_sessions
from segflow.store.duckdb.sql import quote_ident
from segflow.store.duckdb.staging_messages import MessageStager
from segflow.store.duckdb.staging_tables import TableStager
from segflow.store.errors import StorageFailed
from segflow.store.protocols import Progress, StrPath
from segflow.store.records.history import FieldInfo, StoredEvents

DEFAULT_PATH: Final = "segflow.duckdb"
READ_BYTES: Final = 8 << 20
DEMO_MARK: Final = "segflow_demo"
"""A table ``segflow demo`` leaves in its store: a later demo may replace that store."""


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Bulk parsing keeps many small objects alive per batch; the cyclic GC would
    rescan them over and over and finds nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _unreadable(source: str, e: OSError) -> IngestReport:
    problem = IngestProblem("", f"cannot read: {e.strerror or e}", source)
    return IngestReport(sources=[source], rejected=[source], problems=[problem], problem_count=1)


_KNOWN_IDENTITIES: Final = (
    "SELECT NOT EXISTS (SELECT 1 FROM _sf_bn b LEFT JOIN identities i"
    " ON i.kind = b.kind AND i.value = b.value"
    " WHERE b.kind = 'previous' OR i.value IS NULL OR b.first_seen < i.first_seen)"
    " AND NOT EXISTS (SELECT 1 FROM _sf_edges e"
    " JOIN identities a ON a.kind = e.k1 AND a.value = e.v1"
    " JOIN identities b ON b.kind = e.k2 AND b.value = e.v2"
    " WHERE a.profile_id <> b.profile_id)"
)
"""Whether a load leaves the identity graph as it is: every identity is stored already
(seen no earlier than now), the load links no two profiles, and it has no alias.
The stored graph is closed under the linking rules, so then no profile changes."""


class DuckDBStore:
    """Events, identities, traits and profiles in one DuckDB file.

    ``con`` is the connection (the batch evaluator runs its SQL on it).  The
    session time zone is UTC so text timestamps without an offset mean UTC.
    """

    def __init__(self, path: StrPath = DEFAULT_PATH) -> None:
        self.path = os.fspath(path)
        self.con = duckdb.connect(self.path)
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(DDL)
        migrate_change_log(self.con)
        self._keep_event_codes()
        number_profiles(self.con)
        for table in MARKS:  # a store without the marks: clustered as it is
            clustered_upto(self.con, table)
        self.tail_chunk_rows = TAIL_CHUNK_ROWS
        """From this many rows a sorted load is a clustered run of its own, and
        ``compact_tail`` re-sorts this many at a time (``store.duckdb.clustering``)."""
        self.max_fields: int | None = None
        """Most distinct fields (dotted paths in the catalog) message loads may make
        (None: no limit).  A message bringing a field past it is refused: every field
        is a column of the events table, and each column costs every later insert."""
        self.table_stage_bytes: int | None = None
        """Most bytes a Parquet load's rows may take to be staged in a temporary table
        rather than read from the file by each step (None: a part of DuckDB's
        ``memory_limit``, ``staging_tables.STAGE_MEMORY_SHARE``)."""
        self._fields: dict[str, FieldInfo] = {}
        self._columns: list[str] = []
        """The events table's columns (as of the last ``_load_catalog``)."""
        self._loading: LoadedFile | None = None
        """The file the current load reads, noted in the load ledger on commit."""
        self._lower: set[str] = set()
        self._event_names: set[str] = set()
        """The numbered event names (``event_names``), as of the last load."""
        self._identities_changed = True
        self._staged_hashes: tuple[npt.NDArray[np.int64], npt.NDArray[np.uint64]] | None = None
        """A load's staged lines and ``hash(message_id)``, those to be stored once
        repeats are dropped (so the message index needs no read after the commit)."""
        self._threads_before: int | None = None
        """DuckDB's thread count before a kept ``threads(n, keep=True)``."""
        self.last_load: StoredEvents | None = None
        """What the latest ``ingest_messages(..., describe=True)`` stored (else None)."""
        self._messages: MessageIndex | None = None
        """The stored message ids' hashes (built by the first load that needs it)."""
        self._load_catalog()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _keep_event_codes(self) -> None:
        """Add ``events.event_code`` (see ``store.duckdb.schema``), numbering the names of
        events stored without it."""
        if "event_code" in table_columns(self.con, "events"):
            return
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("ALTER TABLE events ADD COLUMN event_code INTEGER")
            self._code_events()
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _code_events(self) -> None:
        """Give every stored event that has a name but no code its name's code,
        numbering names not numbered yet."""
        self._number_event_names("events")
        self.con.execute(
            "UPDATE events SET event_code = n.code FROM event_names n"
            " WHERE events.event = n.name AND events.event_code IS NULL"
        )

    def _number_event_names(self, source: str) -> None:
        """Give every event name in ``source`` not numbered yet the next code."""
        self.con.execute(
            "INSERT INTO event_names (name, code)"
            " SELECT n.event, (SELECT coalesce(max(code), 0) FROM event_names)"
            "  + row_number() OVER (ORDER BY n.event)"
            f" FROM (SELECT DISTINCT event FROM {source} WHERE event IS NOT NULL) n"
            " ANTI JOIN event_names e ON e.name = n.event"
        )

    def _load_catalog(self) -> None:
        rows = self.con.execute("SELECT path, type, overflow FROM field_catalog").fetchall()
        self._fields = {p: FieldInfo(t, bool(o)) for p, t, o in rows}
        self._columns = list(table_columns(self.con, "events"))
        self._lower = {c.lower() for c in self._columns}
        self._read_event_names()

    def _read_event_names(self) -> None:
        self._event_names = {
            str(n) for (n,) in self.con.execute("SELECT name FROM event_names").fetchall()
        }

    @property
    def fields(self) -> dict[str, FieldInfo]:
        """The field catalog: dotted path -> column type and overflow flag."""
        return dict(self._fields)

    @property
    def known_fields(self) -> Mapping[str, FieldInfo]:
        """``fields`` as loaded, not a copy: what a load's new paths are checked against."""
        return self._fields

    @property
    def lower_columns(self) -> AbstractSet[str]:
        """The events table's column names in lower case (DuckDB's names are not
        case-sensitive)."""
        return self._lower

    @contextmanager
    def threads(self, n: int | None, *, keep: bool = False) -> Iterator[None]:
        """Run DuckDB with ``n`` threads inside the block (None: as configured).  A group
        commit of a few thousand rows is dozens of small statements: extra threads only
        add scheduling and cache traffic there, and take a core from the server's event
        loop.  ``keep``: leave ``n`` set after the block (the server's writer, until it goes
        idle: ``SET threads`` restarts DuckDB's pool, twice a group);
        ``restore_threads`` goes back."""
        if n is None:
            yield
            return
        if self._threads_before is None:
            row = self.con.execute("SELECT current_setting('threads')").fetchone()
            before = int(row[0]) if row else n
            if before == n:
                yield
                return
            self.con.execute(f"SET threads = {int(n)}")
            self._threads_before = before
        try:
            yield
        finally:
            if not keep:
                self.restore_threads()

    def defer_checkpoints(self, wal_bytes: int) -> None:
        """Let the write-ahead log grow to ``wal_bytes`` before a commit checkpoints it
        (with DuckDB's default, 16 MB, a busy server's group commits stall every so often
        folding the log into the file; ``checkpoint_if`` does it when idle)."""
        self.con.execute(f"SET checkpoint_threshold = '{int(wal_bytes)}B'")

    def wal_bytes(self) -> int:
        """The size of the write-ahead log (what the next checkpoint folds in)."""
        try:
            return os.path.getsize(self.path + ".wal")
        except OSError:
            return 0

    def checkpoint_if(self, wal_bytes: int) -> bool:
        """Checkpoint when the write-ahead log holds more than ``wal_bytes``."""
        if self.wal_bytes() <= wal_bytes:
            return False
        self.con.execute("CHECKPOINT")
        return True

    def restore_threads(self) -> None:
        """Undo a kept ``threads(n, keep=True)``."""
        if self._threads_before is not None:
            self.con.execute(f"SET threads = {self._threads_before}")
            self._threads_before = None

    # -- ingestion -------------------------------------------------------------------
    def ingest_jsonl(
        self,
        paths: StrPath | Iterable[StrPath],
        *,
        skip_invalid: bool = False,
        progress: Progress | None = None,
        once: bool = False,
    ) -> IngestReport:
        """Load JSON Lines files of Segment messages, one transaction per file.

        A file with an invalid line stores nothing (unless ``skip_invalid``); the other
        files still load.  Raises ``IngestError`` listing every problem if any file was
        rejected; ``progress(bytes_done, bytes_total)`` is called as lines are read.
        ``once``: skip a file the load ledger has (``loaded_files``), and note each
        file stored in it, in the file's own transaction.
        """
        files = (
            [os.fspath(paths)]
            if isinstance(paths, str | os.PathLike)
            else [os.fspath(p) for p in paths]
        )
        total = sum(os.path.getsize(f) for f in files if os.path.isfile(f))
        done = 0
        report = IngestReport()
        for f in files:
            try:
                skip, ledger = self._unless_loaded(f, once, report)
                if skip:
                    done += os.path.getsize(f)
                    continue
                fh = open(f, "rb")  # noqa: SIM115  (closed by the with below)
            except OSError as e:
                report.add(_unreadable(f, e))
                continue
            self._loading = ledger
            try:
                with _gc_paused(), fh:
                    done = self._load_jsonl(fh, f, skip_invalid, report, progress, done, total)
            finally:
                self._loading = None
            if progress is not None:
                progress(done, total)
        if report.rejected:
            raise IngestError(report.problems, total=report.problem_count, report=report)
        return report

    def _load_jsonl(
        self,
        fh: BinaryIO,
        source: str,
        skip_invalid: bool,
        report: IngestReport,
        progress: Progress | None,
        done: int,
        total: int,
    ) -> int:
        """One file: read in big blocks, whole lines to the stager; returns bytes done."""
        started = time.perf_counter()
        stager = MessageStager(self, source, skip_invalid)
        try:
            line, rest = 0, b""
            if fh.read(3) == b"\xef\xbb\xbf":  # a UTF-8 byte order mark is skipped
                done += 3
            else:
                fh.seek(0)
            while chunk := fh.read(READ_BYTES):
                done += len(chunk)
                data = rest + chunk
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if cut:
                    line = stager.add_block(data[:cut], line)
                if progress is not None:
                    progress(done, total)
            if rest:
                stager.add_block(rest + b"\n", line)
        except BaseException:
            self.drop_temps()
            raise
        report.add(stager.finish(started))
        return done

    def ingest_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        source: str = "api",
        *,
        skip_invalid: bool = False,
        json_values: bool = False,
        describe: bool = False,
    ) -> IngestReport:
        """Load in-memory Segment messages in one transaction; problems are reported
        as ``source:N`` with N the 1-based position in ``messages``.

        ``json_values``: the messages come straight from a JSON parser (the HTTP API),
        so only their core fields are checked in Python, as for JSON Lines; values of
        other Python types are then not allowed inside properties/context/traits.
        ``describe``: leave a ``StoredEvents`` of what was stored in ``last_load`` (the
        server hands it to the live evaluator instead of it reading the rows back)."""
        started = time.perf_counter()
        self.last_load = None
        with _gc_paused():
            stager = MessageStager(self, source, skip_invalid, json_values)
            if describe:
                stager.by_line = {}
            try:
                try:
                    for i, raw in enumerate(messages, 1):
                        stager.add_object(raw, i)
                except BaseException:
                    self.drop_temps()
                    raise
                report = stager.finish(started)
            except duckdb.IOException as e:  # the disk or the file, not the messages
                raise StorageFailed(str(e)) from e
        if report.rejected:
            raise IngestError(report.problems, total=report.problem_count, report=report)
        return report

    def ingest_table(
        self,
        path: StrPath,
        *,
        skip_invalid: bool = False,
        progress: Progress | None = None,
        once: bool = False,
    ) -> IngestReport:
        """Load a flat CSV or Parquet event table, vectorised by DuckDB.

        Columns: ``message_id, type (default track), event, user_id, anonymous_id,
        previous_id, group_id, timestamp, received_at (default now), sent_at``, dotted
        ``properties.X`` / ``context.X.Y`` / ``traits.X`` scalars and JSON-text
        ``properties`` / ``context`` / ``traits`` (camelCase spellings accepted).
        Problems name the 1-based data row (and for CSV the file line, assuming no
        line breaks inside quoted fields).  ``progress(step, steps)`` per phase.
        ``once``: as for ``ingest_jsonl``.
        """
        report = IngestReport()
        try:
            skip, ledger = self._unless_loaded(os.fspath(path), once, report)
        except OSError as e:
            skip, ledger, report = False, None, _unreadable(os.fspath(path), e)
        if not skip and not report.rejected:
            self._loading = ledger
            try:
                with _gc_paused():
                    stager = TableStager(self, path, skip_invalid, self.table_stage_bytes)
                    report = stager.run(progress)
            finally:
                self._loading = None
        if report.rejected:
            raise IngestError(report.problems, total=report.problem_count, report=report)
        return report

    def _unless_loaded(
        self, path: str, once: bool, report: IngestReport
    ) -> tuple[bool, LoadedFile | None]:
        """(skip, ledger entry): skip when ``once`` and the load ledger has the file
        (noted in ``report``); the entry to note on commit (None unless ``once``)."""
        if not once:
            return False, None
        file = file_digest(path)
        if is_loaded(self.con, file):
            report.add(IngestReport(sources=[path], skipped=[path]))
            return True, None
        return False, file

    # -- commit ----------------------------------------------------------------------
    def drop_temps(self) -> None:
        """Drop the load's temporary views and tables (all named ``_sf_*``)."""
        rows = self.con.execute(
            "SELECT 'VIEW', view_name FROM duckdb_views() WHERE temporary"
            " AND starts_with(view_name, '_sf_')"
            " UNION ALL SELECT 'TABLE', table_name FROM duckdb_tables() WHERE temporary"
            " AND starts_with(table_name, '_sf_')"
        ).fetchall()
        if rows:  # one call: each call is a GIL hand-off, costly in a busy server
            self.con.execute(
                "; ".join(f"DROP {kind} IF EXISTS {quote_ident(name)}" for kind, name in rows)
            )

    def _stage_columns(self) -> list[str]:
        rows = self.con.execute(f"DESCRIBE {NEW}").fetchall()
        return [r[0] for r in rows]

    def commit_load(
        self,
        fields: Fields,
        report: IngestReport,
        by_line: dict[int, Message] | None = None,
        plain: bool = True,
    ) -> None:
        """Move the valid staged rows (``_sf_valid``) into the store, one transaction.

        Rows whose message id is stored already (found through the message index), or
        repeats an earlier row of this load, are dropped first; the dynamic fields
        are then typed on what remains.  With ``by_line`` (the staged messages by
        line) the stored events are described in ``last_load`` once committed.

        A server commits a group of a few thousand events many times a second, so
        statements the load can do without are skipped (each has a fixed cost, and in
        the server a GIL hand-off): no duplicate bookkeeping when no line repeats, no
        trait statements for a load without trait writes, no event-name numbering
        when every name is numbered, one profiles upsert when no profiles merge.
        """
        con = self.con
        load = fields.load
        now = utcnow()
        described: StoredEvents | None = None
        # one call each for the setting and the transaction's ends: every execute is a
        # GIL hand-off, and in a busy server each waits for the GIL to come back
        con.execute("SET preserve_insertion_order = false; BEGIN TRANSACTION")
        try:
            dropped = self._drop_repeats(load.repeats)
            fresh = report.read - report.invalid - dropped
            report.duplicates += dropped
            report.inserted += fresh
            if fresh:
                fields.run()
                for path, typ in load.new_fields.items():
                    if typ != "JSON":
                        con.execute(f"ALTER TABLE events ADD COLUMN {quote_ident(path)} {typ}")
                    con.execute(
                        "INSERT INTO field_catalog (path, type, overflow) VALUES (?, ?, ?)"
                        " ON CONFLICT DO NOTHING",
                        [path, typ, path in load.overflow],
                    )
                if load.overflow:
                    con.execute(
                        "UPDATE field_catalog SET overflow = TRUE WHERE list_contains(?, path)",
                        [sorted(load.overflow)],
                    )
                merges = self._resolve_identities()
                base = events_seq(con)
                traits = self._insert(load, base, now, bool(merges))
                top: int | None
                if by_line is not None:  # the mark is the last row described
                    described = self._describe(base, by_line, traits, len(merges), plain)
                    top = described.upto_seq if described.rows else None
                else:
                    row = con.execute(
                        "SELECT max(seq) FROM events WHERE seq > $b", {"b": base}
                    ).fetchone()
                    top = row[0] if row else None
                if top is not None:
                    raise_events_seq(con, int(top))
                note_sorted_load(con, "events", fresh, chunk=self.tail_chunk_rows)
                note_sorted_load(con, "traits", traits, chunk=self.tail_chunk_rows)
                if traits or merges:  # else no trait row is new or moved: links hold
                    con.execute(LINK_TRAITS)
                report.merges += merges
            if self._loading is not None:
                record_loaded(con, self._loading, report.read, report.inserted, report.invalid)
            con.execute("COMMIT; RESET preserve_insertion_order")
        except BaseException:
            con.execute("ROLLBACK; RESET preserve_insertion_order")
            self._load_catalog()
            raise
        if fresh and self._messages is not None:
            if self._staged_hashes is not None:  # the stored rows' hashes, seq by line
                staged, hashes = self._staged_hashes
                self._messages.add(hashes, staged + base)
            else:
                self._messages.add_since(con, base)
        self._staged_hashes = None
        if load.new_fields or load.overflow:  # else the catalog is as it was loaded
            self._load_catalog()
        if described is not None:
            self.last_load = replace(
                described, fields=dict(self._fields), columns=frozenset(self._lower)
            )

    def message_index(self) -> MessageIndex:
        """The stored message ids' hashes, built by one scan on first use (the server
        builds it at start, so that its first group commit does not)."""
        if self._messages is None:
            self._messages = MessageIndex.build(self.con)
        return self._messages

    @contextmanager
    def _stored_repeats(self) -> Iterator[tuple[str, dict[str, int]] | None]:
        """A query for the staged lines whose message id is stored already (None when
        no line can be).  The message index names the few stored events that can match
        (equal hash); only those are compared, by ``seq``, instead of every stored
        message id."""
        con = self.con
        got = con.execute(f"SELECT _line, hash(message_id) AS h FROM {VALID}").fetchnumpy()
        staged = np.asarray(got["_line"], dtype=np.int64)
        hashes = np.asarray(got["h"], dtype=np.uint64)
        self._staged_hashes = (staged, hashes)
        pos, seqs = self.message_index().candidates(hashes)
        if not len(pos):
            yield None
            return
        lines = staged[pos]
        con.register("_sf_cand", pa.table({"_line": lines, "seq": seqs}))
        try:
            yield (
                "SELECT DISTINCT c._line FROM _sf_cand c"
                f" JOIN {VALID} s ON s._line = c._line"
                " JOIN (SELECT seq, message_id FROM events WHERE seq BETWEEN $lo AND $hi) e"
                " ON e.seq = c.seq AND e.message_id = s.message_id",
                {"lo": int(seqs.min()), "hi": int(seqs.max())},
            )
        finally:
            con.unregister("_sf_cand")

    def _drop_repeats(self, repeats: list[int] | None) -> int:
        """Leave in ``_sf_new`` the valid rows to store: not repeating an earlier line's
        message id nor a stored one.  Returns how many were left out.  ``repeats``: the
        repeated lines when the stager knew them (a small in-memory load, whose lines
        are then handled in Python); None: found in SQL (a file of any size)."""
        con = self.con
        if repeats is not None:
            with self._stored_repeats() as query:
                stored = [] if query is None else con.execute(*query).fetchall()
            drop = sorted({*repeats, *(int(r[0]) for r in stored)})
            if drop and self._staged_hashes is not None:  # the index takes the rest
                staged, hashes = self._staged_hashes
                keep = ~np.isin(staged, np.asarray(drop, dtype=np.int64))
                self._staged_hashes = (staged[keep], hashes[keep])
            if not drop:
                con.execute(f"CREATE OR REPLACE TEMP VIEW {NEW} AS FROM {VALID}")
                return 0
            con.register("_sf_lines", pa.table({"_line": pa.array(drop, pa.int64())}))
            try:
                con.execute("CREATE OR REPLACE TEMP TABLE _sf_drop AS FROM _sf_lines")
            finally:
                con.unregister("_sf_lines")
        else:
            with self._stored_repeats() as query:
                self._load_repeats()
                if query is not None:
                    sql, params = query
                    con.execute(
                        f"INSERT INTO _sf_drop {sql}"
                        " WHERE c._line NOT IN (SELECT _line FROM _sf_drop)",
                        params,
                    )
            self._staged_hashes = None  # which rows are stored is known in SQL only
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {NEW} AS SELECT s.* FROM {VALID} s"
            " ANTI JOIN _sf_drop d ON s._line = d._line"
        )
        (dropped,) = con.execute("SELECT count(*) FROM _sf_drop").fetchone() or (0,)
        return int(dropped)

    def _load_repeats(self) -> None:
        """``_sf_drop``: the valid rows repeating the message id of an earlier row of the
        load.  Only rows whose id hash repeats (found in NumPy from the hashes the message
        index needs anyway) are compared as strings: grouping every row's id text costs
        more than the rest of the check."""
        con = self.con
        assert self._staged_hashes is not None
        hashes = np.sort(self._staged_hashes[1])
        twice = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
        if not len(twice):
            con.execute("CREATE OR REPLACE TEMP TABLE _sf_drop (_line BIGINT)")
            return
        con.register("_sf_twice", pa.table({"h": pa.array(twice, pa.uint64())}))
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _sf_drop AS"
                f" WITH c AS (SELECT _line, message_id FROM {VALID}"
                " WHERE hash(message_id) IN (SELECT h FROM _sf_twice))"
                " SELECT c._line FROM c JOIN (SELECT message_id, min(_line) AS first FROM c"
                " GROUP BY message_id HAVING count(*) > 1) d"
                " ON c.message_id = d.message_id AND c._line > d.first"
            )
        finally:
            con.unregister("_sf_twice")

    def _describe(
        self, base: int, by_line: dict[int, Message], traits: int, merges: int, plain: bool
    ) -> StoredEvents:
        """The rows just inserted (``seq > base``): seq, profile, µs and their message.
        One narrow scan of the new rows (zone maps skip the rest of the table)."""
        got = self.con.execute(
            'SELECT seq, profile_id, epoch_us("timestamp") AS ts FROM events'
            " WHERE seq > $base ORDER BY seq",
            {"base": base},
        ).fetchall()
        rows = [(q, p, t, by_line[q - base]) for q, p, t in got]
        upto = rows[-1][0] if rows else base
        return StoredEvents(base, upto, rows, {}, frozenset(), traits, merges, plain)

    def _insert(self, load: Load, base: int, now: datetime, merged: bool) -> int:
        """Insert the new events, their trait rows, identities, profiles and merges;
        returns the number of trait rows written."""
        con = self.con
        stage = set(load.stage_columns or self._stage_columns())
        # the columns as loaded plus those this load added (no catalog query per load)
        events = self._columns + [p for p, t in load.new_fields.items() if t != "JSON"]
        names: list[str] = []
        exprs: list[str] = []
        for c in events:
            if c in ("seq", "profile_id", "profile_no", "event_code"):
                continue
            if c in load.select:
                expr = load.select[c]
            elif c in stage:
                expr = f"s.{quote_ident(c)}"
            else:
                continue
            names.append(quote_ident(c))
            exprs.append(expr)
        if merged:
            if has_table(con, SESSIONS):  # before the merged-away profiles' numbers go
                move_sessions(
                    con,
                    "SELECT p.profile_no AS from_no, m.into_no FROM _sf_merges m"
                    " JOIN profiles p ON p.profile_id = m.from_profile",
                )
            for table, extra in (("events", ""), ("traits", ", linked = FALSE")):
                con.execute(
                    f"UPDATE {table} SET profile_id = m.into_profile, profile_no = m.into_no"
                    f"{extra} FROM _sf_merges m WHERE {table}.profile_id = m.from_profile"
                )
        if load.names is None or not load.names <= self._event_names:
            self._number_event_names(NEW)
            # the names now numbered, read back: ``load.names`` also holds the names of
            # repeats left out of ``NEW``, which got no code (a rollback reloads it)
            self._read_event_names()
        con.execute(
            f"INSERT INTO events ({', '.join(names)}, seq, profile_id, profile_no, event_code)"
            f" SELECT {', '.join(exprs)}, $base + s._line, i.profile_id, i.profile_no, n.code"
            f" FROM {load.source} s"
            # every staged identity is in the map: a row's user id names its profile,
            # else its anonymous id (one join instead of one per kind)
            " LEFT JOIN _sf_idmap i ON i.kind = CASE WHEN s.user_id IS NULL"
            " THEN 'anonymous' ELSE 'user' END AND i.value = coalesce(s.user_id, s.anonymous_id)"
            " LEFT JOIN event_names n ON n.name = s.event"
            # new profiles are numbered in profile_id order: the same clustering
            " ORDER BY n.code, i.profile_no",
            {"base": base},
        )
        traits = 0
        if load.has_traits:
            (traits,) = con.execute(
                'INSERT INTO traits (profile_id, profile_no, key, "timestamp", message_id, kind,'
                ' num, str, bool, json) SELECT e.profile_id, e.profile_no, t.key, e."timestamp",'
                f" e.message_id, t.kind, t.num, t.str, t.bool, t.json FROM {TRAIT_STAGE} t"
                " JOIN events e ON e.seq = $base + t._line WHERE e.seq > $base"
                # clustered by key, as events are by name: the batch evaluator's scan
                # of one trait then skips the row groups of the other keys
                " ORDER BY t.key, e.profile_no",
                {"base": base},
            ).fetchone() or (0,)
        if self._identities_changed:
            con.execute(
                "INSERT INTO identities (kind, value, profile_id, first_seen)"
                " SELECT kind, value, profile_id, first_seen FROM _sf_idmap"
                " ON CONFLICT (kind, value) DO UPDATE SET profile_id = excluded.profile_id,"
                " first_seen = excluded.first_seen"
            )
        if not merged:  # first/last seen of the touched profiles, in one upsert
            con.execute(
                "INSERT INTO profiles (profile_id, profile_no, first_seen, last_seen)"
                ' SELECT profile_id, any_value(profile_no), min("timestamp"), max("timestamp")'
                " FROM events WHERE seq > $base GROUP BY profile_id"
                " ON CONFLICT (profile_id) DO UPDATE SET"
                " first_seen = least(first_seen, excluded.first_seen),"
                " last_seen = greatest(last_seen, excluded.last_seen)",
                {"base": base},
            )
            return int(traits)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _sf_prof AS"
            " WITH fresh AS (SELECT profile_id, any_value(profile_no) AS no,"
            ' min("timestamp") AS fs, max("timestamp") AS ls FROM events WHERE seq > $base'
            " GROUP BY profile_id),"
            " old AS (SELECT coalesce(m.into_profile, p.profile_id) AS profile_id,"
            " coalesce(m.into_no, p.profile_no) AS no, p.first_seen AS fs, p.last_seen AS ls"
            " FROM profiles p LEFT JOIN _sf_merges m ON p.profile_id = m.from_profile"
            " WHERE m.from_profile IS NOT NULL"
            " OR p.profile_id IN (SELECT profile_id FROM fresh))"
            " SELECT profile_id, any_value(no) AS profile_no, min(fs) AS first_seen,"
            " max(ls) AS last_seen"
            " FROM (SELECT * FROM fresh UNION ALL SELECT * FROM old) GROUP BY profile_id",
            {"base": base},
        )
        self._drop_merged_profiles()
        con.execute(
            "INSERT INTO profiles (profile_id, profile_no, first_seen, last_seen)"
            " SELECT profile_id, profile_no, first_seen, last_seen FROM _sf_prof"
            " ON CONFLICT (profile_id) DO UPDATE SET first_seen = excluded.first_seen,"
            " last_seen = excluded.last_seen"
        )
        con.execute(
            'INSERT INTO merges (from_profile, into_profile, "at")'
            " SELECT from_profile, into_profile, $now FROM _sf_merges",
            {"now": now},
        )
        return int(traits)

    def _drop_merged_profiles(self) -> None:
        """Remove merged-away profiles.  Deleting many rows from a table with a primary
        key is slow in DuckDB (index upkeep for every row), so past a share of the
        table it is rebuilt from its own DDL instead, far faster for many merges."""
        con = self.con
        (gone,) = con.execute("SELECT count(*) FROM _sf_merges").fetchone() or (0,)
        (total,) = con.execute("SELECT count(*) FROM profiles").fetchone() or (0,)
        if gone <= max(10_000, total // 25):
            con.execute(
                "DELETE FROM profiles WHERE profile_id IN (SELECT from_profile FROM _sf_merges)"
            )
            return
        (ddl,) = con.execute(
            "SELECT sql FROM duckdb_tables() WHERE table_name = 'profiles'"
            " AND schema_name = 'main' AND database_name = current_database()"
        ).fetchone() or ("",)
        con.execute(
            re.sub(r"(?i)^CREATE TABLE\s+(\S+\.)?profiles", "CREATE TABLE _sf_profiles", ddl)
        )
        con.execute(
            "INSERT INTO _sf_profiles SELECT * FROM profiles p"
            " ANTI JOIN _sf_merges m ON p.profile_id = m.from_profile"
        )
        con.execute("DROP TABLE profiles")
        con.execute("ALTER TABLE _sf_profiles RENAME TO profiles")

    def _resolve_identities(self) -> list[Merge]:
        """Resolve the staged messages' identities into ``_sf_idmap`` (every identity
        touched -> its profile) and ``_sf_merges`` (old profile -> new profile).

        Identities are (kind, value) nodes: ``user`` and ``anonymous`` ids, and the
        ``previous`` ids of alias calls.  Edges: a message's user id and anonymous
        id; an alias's user id and previous id; a previous id and any user or
        anonymous id with the same value, whenever either arrives (so an alias may
        name an id the store has not seen yet).  The graph is the batch's nodes and
        edges plus every stored identity of a profile they touch; components come
        from ``connected_components``.  A component's profile id is its user id seen
        first (earliest first_seen, then the smallest id), else its earliest
        anonymous id: a function of the messages, not of the order they arrive in.
        """
        con = self.con
        # both tables in one call (each call is a GIL hand-off in a busy server)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _sf_bn AS SELECT kind, value, min(ts) AS first_seen"
            " FROM (SELECT 'user' AS kind, user_id AS value, \"timestamp\" AS ts"
            f" FROM {NEW} WHERE user_id IS NOT NULL"
            f" UNION ALL SELECT 'anonymous', anonymous_id, \"timestamp\" FROM {NEW}"
            " WHERE anonymous_id IS NOT NULL"
            f" UNION ALL SELECT 'previous', previous_id, \"timestamp\" FROM {NEW}"
            " WHERE previous_id IS NOT NULL) GROUP BY kind, value;"
            " CREATE OR REPLACE TEMP TABLE _sf_edges AS"
            " SELECT DISTINCT 'user' AS k1, user_id AS v1, 'anonymous' AS k2,"
            f" anonymous_id AS v2 FROM {NEW}"
            " WHERE user_id IS NOT NULL AND anonymous_id IS NOT NULL"
            " UNION SELECT 'user', user_id, 'previous', previous_id"
            f" FROM {NEW} WHERE user_id IS NOT NULL AND previous_id IS NOT NULL"
        )
        (known,) = con.execute(_KNOWN_IDENTITIES).fetchone() or (False,)
        self._identities_changed = not known
        if known:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _sf_idmap AS SELECT i.kind, i.value,"
                " i.first_seen, i.profile_id AS old_profile, i.profile_id, p.profile_no"
                " FROM identities i SEMI JOIN _sf_bn b ON i.kind = b.kind AND i.value = b.value"
                " LEFT JOIN profiles p ON p.profile_id = i.profile_id;"
                " CREATE OR REPLACE TEMP TABLE _sf_merges"
                " (from_profile VARCHAR, into_profile VARCHAR, into_no INTEGER)"
            )
            return []
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _sf_nodes AS"
            " WITH touched AS (SELECT DISTINCT i.profile_id FROM identities i"
            " JOIN _sf_bn b ON i.value = b.value"
            " AND (i.kind = b.kind OR i.kind = 'previous' OR b.kind = 'previous')),"
            " old AS (SELECT i.* FROM identities i SEMI JOIN touched t"
            " ON i.profile_id = t.profile_id)"
            " SELECT (row_number() OVER () - 1)::BIGINT AS id,"
            " coalesce(b.kind, o.kind) AS kind, coalesce(b.value, o.value) AS value,"
            " least(b.first_seen, o.first_seen) AS first_seen, o.profile_id AS old_profile"
            " FROM _sf_bn b FULL OUTER JOIN old o ON b.kind = o.kind AND b.value = o.value"
        )
        (n,) = con.execute("SELECT count(*) FROM _sf_nodes").fetchone() or (0,)
        edges = con.execute(
            "SELECT a.id AS u, b.id AS v FROM _sf_edges e"
            " JOIN _sf_nodes a ON a.kind = e.k1 AND a.value = e.v1"
            " JOIN _sf_nodes b ON b.kind = e.k2 AND b.value = e.v2"
            " UNION ALL SELECT p.id, o.id FROM _sf_nodes p JOIN _sf_nodes o"
            " ON p.value = o.value AND p.kind = 'previous' AND o.kind <> 'previous'"
            " UNION ALL SELECT id, min(id) OVER (PARTITION BY old_profile) FROM _sf_nodes"
            " WHERE old_profile IS NOT NULL"
        ).fetchnumpy()
        labels = connected_components(
            int(n),
            np.asarray(edges["u"], dtype=np.int64),
            np.asarray(edges["v"], dtype=np.int64),
        )
        con.register(
            "_sf_labels", pa.table({"id": np.arange(int(n), dtype=np.int64), "label": labels})
        )
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _sf_idmap AS"
                " WITH labelled AS (SELECT n.*, l.label FROM _sf_nodes n"
                " JOIN _sf_labels l ON n.id = l.id),"
                " canon AS (SELECT label, arg_min(value, (kind <> 'user',"
                " kind <> 'anonymous', first_seen, value)) AS profile_id"
                " FROM labelled GROUP BY label),"
                # a profile not stored yet takes the next number (by id, not by label:
                # a user and an anonymous id with the same value name one profile)
                f" fresh AS (SELECT profile_id, {NEXT_NUMBER} + row_number() OVER"
                " (ORDER BY profile_id) AS profile_no FROM (SELECT DISTINCT profile_id"
                " FROM canon) ANTI JOIN profiles USING (profile_id))"
                " SELECT n.kind, n.value, n.first_seen, n.old_profile, c.profile_id,"
                " coalesce(p.profile_no, f.profile_no)::INTEGER AS profile_no"
                " FROM labelled n JOIN canon c ON n.label = c.label"
                " LEFT JOIN profiles p ON p.profile_id = c.profile_id"
                " LEFT JOIN fresh f ON f.profile_id = c.profile_id"
            )
        finally:
            con.unregister("_sf_labels")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _sf_merges AS SELECT DISTINCT"
            " old_profile AS from_profile, profile_id AS into_profile,"
            " profile_no AS into_no FROM _sf_idmap"
            " WHERE old_profile IS NOT NULL AND old_profile <> profile_id"
        )
        rows = con.execute(
            "SELECT from_profile, into_profile FROM _sf_merges ORDER BY from_profile"
        ).fetchall()
        return [Merge(a, b) for a, b in rows]

    # -- maintenance -----------------------------------------------------------------
    def compact(self, tables: Sequence[str] = ("events", "traits")) -> dict[str, int]:
        """Rewrite ``events`` clustered by (event code, profile) and ``traits`` by
        (key, profile) in one transaction (or only those of ``tables``).

        Bulk loads arrive clustered; many small loads (the server's group commits) leave
        row groups holding every event name (trait key), which each per-name (per-trait)
        scan of the batch evaluator must then read.  So does a load of several files:
        each file's trait rows, a few row groups, hold every key (``Segflow.ingest``
        re-clusters the traits after such a load; the server sorts what its group
        commits stored, a chunk at a time: ``compact_tail``).  Events stored without
        their name's code (older stores can hold some, after a repeat left out of a
        load) get it first.  Returns the number of rows rewritten by table."""
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            if "events" in tables:
                self._code_events()
            rewritten = {table: rewrite_sorted(con, table) for table in tables}
            for table in tables:
                set_clustered(con, table, newest(con, table))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._read_event_names()
        con.execute("CHECKPOINT")
        return rewritten

    def compact_tail(self, chunk: int | None = None) -> dict[str, int]:
        """Re-sort the oldest ``chunk`` rows stored since the last compaction, per table,
        once that many have gathered (``store.duckdb.clustering``): what keeps a server-fed
        store clustered at the cost of the new rows only.  Returns the rows rewritten
        by table.  Checkpoints after a rewrite: the rewritten rows went to the file
        directly, not to the log, so the log-size trigger would leave the row groups
        they left behind (still read, their rows skipped) until some later checkpoint."""
        done = compact_tail(self.con, chunk or self.tail_chunk_rows)
        if done:
            self.con.execute("CHECKPOINT")
        return done

    # -- reads -----------------------------------------------------------------------
    def resolve_profile(
        self, *, user_id: str | None = None, anonymous_id: str | None = None
    ) -> str | None:
        """The profile an identity belongs to (user id first), or None if unknown."""
        for kind, value in (("user", user_id), ("anonymous", anonymous_id)):
            if value is None:
                continue
            row = self.con.execute(
                "SELECT profile_id FROM identities WHERE kind = ? AND value = ?", [kind, value]
            ).fetchone()
            if row is not None:
                return str(row[0])
        return None

    def identities(self, profile_id: str) -> list[tuple[str, str]]:
        """(kind, value) of every identity of a profile."""
        rows = self.con.execute(
            "SELECT kind, value FROM identities WHERE profile_id = ? ORDER BY kind, value",
            [profile_id],
        ).fetchall()
        return [(str(k), str(v)) for k, v in rows]

    def merges(self) -> list[tuple[str, str, datetime]]:
        """Every recorded merge, oldest first."""
        rows = self.con.execute(
            'SELECT from_profile, into_profile, "at" FROM merges ORDER BY "at", from_profile'
        ).fetchall()
        return [(str(a), str(b), t) for a, b, t in rows]

    def events_for_profile(
        self, profile_id: str, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """A profile's events ordered by (timestamp, message_id), as plain dicts with
        ``properties``/``context``/``traits`` rebuilt from the columns and ``extra``."""
        sql = "SELECT * FROM events WHERE profile_id = $p"
        params: dict[str, Any] = {"p": profile_id}
        if until is not None:
            sql += ' AND "timestamp" <= $t'
            params["t"] = until
        cur = self.con.execute(sql + ' ORDER BY "timestamp", message_id', params)
        names = [d[0] for d in cur.description or ()]
        return [message_of_row(names, row) for row in cur.fetchall()]

    def _events(self) -> Iterator[dict[str, Any]]:
        cur = self.con.execute('SELECT * FROM events ORDER BY "timestamp", message_id')
        names = [d[0] for d in cur.description or ()]
        for row in cur.fetchall():
            yield message_of_row(names, row)

    def traits_as_of(self, profile_id: str, t: datetime | None = None) -> dict[str, Any]:
        """The profile's traits (flat dotted keys) as of ``t`` (default: latest):
        last write wins by (timestamp, message_id); cleared traits are absent."""
        sql = (
            "SELECT key, kind, num, str, bool, json FROM traits WHERE profile_id = $p"
            + (' AND "timestamp" <= $t' if t is not None else "")
            + " QUALIFY row_number() OVER (PARTITION BY key"
            ' ORDER BY "timestamp" DESC, message_id DESC) = 1 ORDER BY key'
        )
        params: dict[str, Any] = {"p": profile_id}
        if t is not None:
            params["t"] = t
        out: dict[str, Any] = {}
        for key, kind, num, s, b, js in self.con.execute(sql, params).fetchall():
            if kind == "number":
                out[key] = num
            elif kind == "string":
                out[key] = s
            elif kind == "bool":
                out[key] = b
            elif kind == "json":
                out[key] = orjson.loads(js)
        return out

    def profile_ids(self) -> list[str]:
        rows = self.con.execute("SELECT profile_id FROM profiles ORDER BY profile_id").fetchall()
        return [str(r[0]) for r in rows]

    def count_events(self) -> int:
        row = self.con.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0

    def count_profiles(self) -> int:
        row = self.con.execute("SELECT count(*) FROM profiles").fetchone()
        return int(row[0]) if row else 0

    def count_trait_rows(self) -> int:
        """Stored trait writes (every write of every key, not only the current ones)."""
        row = self.con.execute("SELECT count(*) FROM traits").fetchone()
        return int(row[0]) if row else 0

    def mark_demo(self) -> None:
        """Leave the mark of ``segflow demo``: a later demo may replace this store."""
        self.con.execute(f"CREATE TABLE {DEMO_MARK} AS SELECT now() AS made_at")

    def made_by_demo(self) -> bool:
        """Whether ``segflow demo`` made this store (``mark_demo``)."""
        return has_table(self.con, DEMO_MARK)

    def catalogue(self) -> Catalogue:
        """What the store has seen: event names, event field paths and trait keys (a
        definition naming something else is most likely a typo)."""
        con = self.con
        events = frozenset(r[0] for r in con.execute("SELECT name FROM event_names").fetchall())
        paths = frozenset(r[0] for r in con.execute("SELECT path FROM field_catalog").fetchall())
        traits = frozenset(r[0] for r in con.execute("SELECT DISTINCT key FROM traits").fetchall())
        return Catalogue(events, paths, traits)


@dataclass(frozen=True)
class Catalogue:
    """Names seen in stored data (``DuckDBStore.catalogue``)."""

    events: frozenset[str]
    paths: frozenset[str]
    traits: frozenset[str]


def message_of_row(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """An events row as a message-shaped dict: dotted columns nested, ``extra`` merged."""
    out: dict[str, Any] = {}
    nested: dict[str, Any] = {root: {} for root in ROOTS}
    extra = None
    for name, v in zip(names, row, strict=True):
        if name == "extra":
            extra = v
        elif name in ("event_code", "profile_no"):
            continue
        elif "." in name:
            if v is not None:
                _put(nested, name, v)
        else:
            out[name] = v
    if extra:
        _merge(nested, orjson.loads(extra))
    for root in ROOTS:
        out[root] = _prune(nested[root])
    return out


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted path in a nested dict (later keys win on clashes)."""
    parts = path.split(".")
    node = tree
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = node[p] = {}
        node = nxt
    node[parts[-1]] = value


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        node = into.get(k)
        if isinstance(v, dict) and isinstance(node, dict):
            _merge(node, v)
        else:
            into[k] = v


def _prune(tree: dict[str, Any]) -> dict[str, Any]:
    """Drop empty objects (left behind in ``extra`` by removed spill values)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            v = _prune(v)
            if not v:
                continue
        out[k] = v
    return out


if TYPE_CHECKING:
    from segflow.store.protocols import FileEventStore

    def _is_a_file_event_store(store: DuckDBStore) -> FileEventStore:
        return store
