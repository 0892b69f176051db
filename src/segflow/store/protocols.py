"""The narrow interfaces evaluators and the service use to reach stored events.

Anything that can ingest Segment messages, resolve identities and hand back a
profile's history can stand behind these; DuckDB (``duckdb_store.DuckDBStore``)
is the embedded default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from segflow.model.events import IngestReport

Progress = Callable[[int, int], None]
"""``progress(done, total)``: bytes of JSON Lines read, or steps of a table load."""


class EventStore(Protocol):
    """Events and profiles: ingestion, identity resolution and per-profile reads."""

    def ingest_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        source: str = "api",
        *,
        skip_invalid: bool = False,
    ) -> IngestReport: ...

    def resolve_profile(
        self, *, user_id: str | None = None, anonymous_id: str | None = None
    ) -> str | None: ...

    def events_for_profile(
        self, profile_id: str, until: datetime | None = None
    ) -> list[dict[str, Any]]: ...

    def profile_ids(self) -> list[str]: ...

    def traits_as_of(self, profile_id: str, t: datetime | None = None) -> dict[str, Any]: ...

    def count_events(self) -> int: ...

    def count_profiles(self) -> int: ...


class FileEventStore(EventStore, Protocol):
    """A store that also bulk-loads files (what the CLI needs)."""

    def ingest_jsonl(
        self,
        paths: str | Iterable[str],
        *,
        skip_invalid: bool = False,
        progress: Progress | None = None,
    ) -> IngestReport: ...

    def ingest_table(
        self, path: str, *, skip_invalid: bool = False, progress: Progress | None = None
    ) -> IngestReport: ...
