"""The narrow interfaces evaluators and the service use to reach stored events.

Anything that can ingest Segment messages, resolve identities and hand back a
profile's history can stand behind these; DuckDB (``duckdb_store.DuckDBStore``)
is the embedded default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from segflow.model.changes import LoggedChange
from segflow.model.events import IngestReport

StrPath = str | os.PathLike[str]
Progress = Callable[[int, int], None]
"""``progress(done, total)``: bytes of JSON Lines read, or steps of a table load."""


class EventStore(Protocol):
    """Events and profiles: ingestion, identity resolution and per-profile reads.

    Ingestion is idempotent by ``message_id`` and atomic per call (or per file);
    invalid input raises ``segflow.model.events.IngestError`` naming where and what.
    Timestamps in and out are naive UTC.
    """

    def ingest_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        source: str = "api",
        *,
        skip_invalid: bool = False,
    ) -> IngestReport: ...

    def resolve_profile(
        self, *, user_id: str | None = None, anonymous_id: str | None = None
    ) -> str | None:
        """The profile an identity belongs to now, or None if it is unknown."""
        ...

    def events_for_profile(
        self, profile_id: str, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Message-shaped dicts ordered by (timestamp, message_id), ``timestamp <= until``."""
        ...

    def profile_ids(self) -> list[str]:
        """Every known profile id (the universe), sorted."""
        ...

    def traits_as_of(self, profile_id: str, t: datetime | None = None) -> dict[str, Any]:
        """Flat dotted trait keys -> values as of ``t`` (latest when None)."""
        ...

    def count_events(self) -> int: ...

    def count_profiles(self) -> int: ...


class FileEventStore(EventStore, Protocol):
    """A store that also bulk-loads files (what the CLI needs)."""

    def ingest_jsonl(
        self,
        paths: StrPath | Iterable[StrPath],
        *,
        skip_invalid: bool = False,
        progress: Progress | None = None,
    ) -> IngestReport: ...

    def ingest_table(
        self, path: StrPath, *, skip_invalid: bool = False, progress: Progress | None = None
    ) -> IngestReport: ...


# -- membership change log (issue 3) ----------------------------------------------------


class ChangeLog(Protocol):
    """The stored membership change log (``store.changes.MembershipChangeLog`` on DuckDB):
    append is idempotent (a change already stored is skipped), reads page by ``seq``."""

    def append(
        self, changes: Iterable[LoggedChange], recorded_at: datetime | None = None
    ) -> list[LoggedChange]: ...

    def query(
        self,
        *,
        segment_id: str | None = None,
        profile_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[LoggedChange]: ...

    def current(self) -> dict[tuple[str, str], tuple[bool, int, datetime]]: ...

    def mark(self, name: str = "live") -> tuple[int, datetime] | None: ...

    def set_mark(self, seq: int, at: datetime, name: str = "live") -> None: ...
