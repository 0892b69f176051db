"""What the live evaluator reads and writes on DuckDB beyond the history reader and the
change log: profiles' first-seen instants, the first event's instant, the transaction
its stored changes and marks share, and the read snapshot a save is prepared on."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

import duckdb

from segflow.store.duckdb.batch import DuckDBBatch
from segflow.store.duckdb.changes import MembershipChangeLog
from segflow.store.duckdb.history import HistoryReader, MessageFields
from segflow.store.duckdb.schema import LINK_TRAITS
from segflow.store.duckdb.segments import SegmentRegistry
from segflow.store.records.history import FieldInfo


class LiveSnapshot:
    """One snapshot of the store on a cursor of its own: the registry, history and
    batch evaluator as they were when it was opened, readable without the store lock
    (a read-only transaction never conflicts with the writer)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, reader: HistoryReader) -> None:
        self._cursor = cursor
        self.reader = reader
        self.registry = SegmentRegistry(cursor)
        self.batch = DuckDBBatch(cursor)

    def rollback(self) -> None:
        """End the snapshot's transaction (it only read; the batch evaluator's scratch
        is dropped)."""
        self._cursor.execute("ROLLBACK")

    def close(self) -> None:
        self._cursor.close()


class DuckDBLive:
    """The live evaluator's store over one connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.reader = HistoryReader(con)
        self.log = MembershipChangeLog(con)

    def first_seen(self) -> dict[str, datetime]:
        """Every profile's first-seen instant."""
        rows = self.con.execute("SELECT profile_id, first_seen FROM profiles").fetchall()
        return {str(p): t for p, t in rows}

    def first_event_at(self) -> datetime | None:
        """The earliest event's timestamp (None without events)."""
        row = self.con.execute('SELECT min("timestamp") FROM events').fetchone()
        return row[0] if row else None

    def begin(self) -> bool:
        """Open a transaction; False when one is already open (the caller's: statements
        then simply join it)."""
        try:
            self.con.execute("BEGIN TRANSACTION")
        except duckdb.TransactionException:
            return False
        return True

    def commit(self) -> None:
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        self.con.execute("ROLLBACK")

    def open_snapshot(self) -> LiveSnapshot:
        """A cursor of its own holding one snapshot of the store (call under the store
        lock; read it without).  Trait writes are linked first so that the batch
        evaluator has nothing to link in the snapshot: a read-only transaction can
        never conflict with the writer."""
        self.con.execute(LINK_TRAITS)
        cursor = self.con.cursor()
        cursor.execute("BEGIN TRANSACTION")
        reader = HistoryReader(cursor)
        reader.max_seq()  # a first read fixes the snapshot
        return LiveSnapshot(cursor, reader)

    def message_fields(
        self, paths: Collection[str], fields: Mapping[str, FieldInfo], columns: Collection[str]
    ) -> MessageFields:
        """How the fields in ``paths`` of a message just stored read back
        (``MessageFields``), given the field catalog and the events table's columns
        after its load."""
        return MessageFields(paths, fields, columns)
