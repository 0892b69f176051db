"""How many stored rows a draft's features would read: the counts behind a cost estimate.

The batch evaluator scans the events of a feature's names up to the instant evaluated
and the trait writes of its keys, so these are the rows a new feature adds to every
evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import duckdb

from segflow.model.definition import CALL_TYPES

# the evaluators' name of a stored call (``model.definition.call_name``): a track
# call's event name; a page/screen call without one is NUL + its type
_CALL_NAME = "CASE WHEN event IS NULL THEN chr(0) || type ELSE event END"


class DuckDBReadCounts:
    """Row counts of stored events by name and of trait writes by key, as of an instant."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def event_counts(self, names: Iterable[str], at: datetime) -> dict[str, int]:
        """Evaluator name -> stored events of that name with ``timestamp <= at`` (names
        never stored are left out); one grouped scan."""
        wanted = sorted(set(names))
        tracks = [n for n in wanted if n not in CALL_TYPES]
        calls = [CALL_TYPES[n] for n in wanted if n in CALL_TYPES]
        if not wanted:
            return {}
        rows = self.con.execute(
            f"SELECT {_CALL_NAME} AS name, count(*) FROM events"
            ' WHERE "timestamp" <= ?'
            " AND (list_contains(?::VARCHAR[], event)"
            "      OR (event IS NULL AND list_contains(?::VARCHAR[], type)))"
            " GROUP BY name",
            [at, tracks, calls],
        ).fetchall()
        return {str(n): int(c) for n, c in rows}

    def trait_rows(self, keys: Iterable[str], at: datetime) -> dict[str, int]:
        """Trait key -> stored writes of it with ``timestamp <= at`` (0 when none)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        rows = self.con.execute(
            'SELECT key, count(*) FROM traits WHERE "timestamp" <= ?'
            " AND list_contains(?::VARCHAR[], key) GROUP BY key",
            [at, wanted],
        ).fetchall()
        found = {str(k): int(c) for k, c in rows}
        return {k: found.get(k, 0) for k in wanted}
