"""The narrow interfaces evaluators and the service use to reach stored events.

Anything that can ingest Segment messages, resolve identities and hand back a
profile's history can stand behind these; DuckDB (``store.duckdb.store.DuckDBStore``)
is the embedded default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from segflow.model.changes import LoggedChange
from segflow.model.consent import Consent
from segflow.model.definition import Segment
from segflow.model.events import IngestReport
from segflow.model.groups import Group
from segflow.model.suppressions import Suppressions
from segflow.store.records.history import EventRow, FieldInfo, StoredEvents, StoredTrait
from segflow.store.records.keys import ApiKey, NewKey

if TYPE_CHECKING:
    import pyarrow as pa

    from segflow.analytics.metrics import MemberAggregates

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

    def identities(self, profile_id: str) -> list[tuple[str, str]]:
        """(kind, value) of every identity of a profile."""
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
        once: bool = False,
    ) -> IngestReport: ...

    def ingest_table(
        self,
        path: StrPath,
        *,
        skip_invalid: bool = False,
        progress: Progress | None = None,
        once: bool = False,
    ) -> IngestReport: ...


class GroupCommitStore(EventStore, Protocol):
    """What the server's group-commit writer calls (``store.duckdb.store.DuckDBStore``
    on DuckDB): one transaction a group, described in ``last_load`` when asked, and the
    idle upkeep between groups."""

    last_load: StoredEvents | None
    """What the latest ``ingest_messages(..., describe=True)`` stored (else None)."""

    def ingest_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        source: str = "api",
        *,
        skip_invalid: bool = False,
        json_values: bool = False,
        describe: bool = False,
    ) -> IngestReport: ...

    def threads(self, n: int | None, *, keep: bool = False) -> AbstractContextManager[None]:
        """Run the engine with ``n`` threads inside the block (None: as configured);
        ``keep``: leave them set until ``restore_threads``."""
        ...

    def restore_threads(self) -> None: ...

    def checkpoint_if(self, wal_bytes: int) -> bool:
        """Checkpoint when the write-ahead log holds more than ``wal_bytes``."""
        ...

    def compact_tail(self, chunk: int | None = None) -> dict[str, int]:
        """Re-sort the rows stored since the last compaction, a chunk at a time; the
        rows rewritten by table."""
        ...


# -- membership change log ------------------------------------------------------------


class ChangeLog(Protocol):
    """The stored membership change log (``store.duckdb.changes.MembershipChangeLog`` on DuckDB):
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

    def top(self) -> int:
        """The newest change's seq (0 for an empty log)."""
        ...

    def cover(self, segment_ids: Mapping[str, int], at: datetime) -> None:
        """The log holds these segments' (id -> version) memberships from ``at`` on
        (kept for the ones already covered from earlier)."""
        ...

    def covered_since(self, segment_ids: Sequence[str]) -> dict[str, datetime]:
        """Segment -> the instant from which the log holds its memberships."""
        ...


class SegmentStore(Protocol):
    """Versioned segment and priority group definitions, static snapshots, evaluated
    memberships and their sizes (``store.duckdb.segments.SegmentRegistry`` on DuckDB).
    ``current()`` holds the groups' resolved members as segments too."""

    def current(self) -> dict[str, Segment]: ...

    def own(self) -> dict[str, Segment]: ...

    def get(self, segment_id: str) -> Segment | None: ...

    def history(self, segment_id: str) -> list[tuple[int, datetime, bool]]: ...

    def versions(self, segment_id: str) -> list[tuple[int, datetime, dict[str, Any]]]: ...

    def saved_versions(self, segment_id: str) -> dict[int, tuple[Segment, datetime]]:
        """Every saved version (deletions left out) and when it was saved."""
        ...

    def check(
        self,
        segments: Iterable[Segment],
        groups: Iterable[Group] = (),
        paths: Mapping[str, str] | None = None,
    ) -> dict[str, Segment]: ...

    def groups(self) -> dict[str, Group]: ...

    def save_groups(
        self, groups: Iterable[Group], paths: Mapping[str, str] | None = None
    ) -> list[tuple[Group, str]]: ...

    def delete_group(self, group_id: str) -> Group: ...

    def group_history(self, group_id: str) -> list[tuple[int, datetime, bool]]: ...

    def save(self, segments: Iterable[Segment]) -> list[tuple[Segment, str]]: ...

    def delete(self, segment_id: str, *, force: bool = False) -> Segment: ...

    def known_profiles(self, ids: Iterable[str]) -> tuple[list[str], list[str]]: ...

    def set_static_members(self, segment_id: str, profile_ids: Iterable[str]) -> int: ...

    def static_members(self, segment_id: str) -> list[str]: ...

    def store_evaluation(
        self,
        table: str,
        columns: Mapping[str, str],
        versions: Mapping[str, int],
        as_of: datetime,
    ) -> None: ...

    def record_sizes(
        self, sizes: Mapping[str, int], versions: Mapping[str, int], as_of: datetime
    ) -> None: ...

    def last_evaluated(self) -> dict[str, datetime]: ...

    def last_sizes(self) -> dict[str, int]: ...

    def size_history(
        self, segment_id: str, points: int
    ) -> tuple[list[tuple[datetime, int]], list[tuple[datetime, int]]]: ...

    def export_members(
        self,
        members: list[str],
        path: Path,
        fmt: str,
        held_out: Collection[str] | None = None,
        labels: Mapping[str, str] | None = None,
        head: pa.Table | None = None,
    ) -> None: ...


class ProfileStore(Protocol):
    """Per-profile reads behind the customer view and the privacy export, and the
    erasure transaction (``store.duckdb.profiles.DuckDBProfileStore`` on DuckDB)."""

    def exists(self, profile_id: str) -> bool: ...

    def by_identity(self, value: str) -> str | None: ...

    def merged_to(self, profile_id: str) -> str | None: ...

    def by_anonymous(self, value: str) -> str | None: ...

    def anonymous_identities(self) -> list[tuple[str, str]]: ...

    def page(
        self, *, limit: int, after: str | None = None, prefix: str | None = None
    ) -> list[tuple[str, datetime]]: ...

    def seen(self, profile_id: str) -> tuple[datetime, datetime] | None: ...

    def cards(self, profile_ids: Sequence[str]) -> dict[str, tuple[str | None, str | None]]: ...

    def search(
        self,
        text: str,
        *,
        limit: int,
        after: str | None = None,
        within: Sequence[str] | None = None,
    ) -> list[tuple[str, str | None, str | None, datetime]]: ...

    def recent_events(
        self, profile_id: str, *, names: tuple[str, ...] = (), limit: int
    ) -> list[dict[str, Any]]: ...

    def cart_events(self, profile_id: str) -> list[dict[str, Any]]: ...

    def timeline(
        self,
        profile_id: str,
        *,
        limit: int,
        before: tuple[datetime, str | None] | None = None,
        types: Sequence[str] = (),
        names: Sequence[str] = (),
    ) -> list[dict[str, Any]]: ...

    def products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def evaluated_segments(self, profile_id: str) -> list[str]: ...

    def trait_writes(self, profile_id: str) -> list[tuple[str, datetime, str, Any]]: ...

    def trait_value_counts(self, keys: Iterable[str]) -> list[tuple[str, str, int]]: ...

    def merges_naming(self, ids: list[str]) -> list[tuple[str, str, datetime]]: ...

    def deliveries_naming(self, ids: list[str]) -> list[tuple[int, str, str, str, Any]]: ...

    def merged_into(self, profile_id: str) -> list[str]: ...

    def identity_values(self, profile_ids: list[str]) -> list[str]: ...

    def pseudonym(self, profile_id: str) -> str: ...

    def load_suppressions(self, into: Suppressions) -> None: ...

    def erase(
        self,
        merged: list[str],
        alias: str,
        *,
        suppress: Iterable[str] = (),
        suppressions: Suppressions | None = None,
        keep_deliveries: Sequence[int] = (),
    ) -> None: ...


# -- value scores and computed traits -------------------------------------------------


class ScoreStore(Protocol):
    """What the value scores read and write (``store.duckdb.scores.DuckDBScores`` on
    DuckDB): the per-customer feature table, the score rows appended to the traits
    history, the runs' reports, and the score traits read back."""

    def feature_table(self, at: datetime, window_days: int) -> pa.Table: ...

    def write_scores(
        self,
        rows: pa.Table,
        at: datetime,
        message_id: str,
        *,
        keys: Sequence[str],
        classifier_key: str,
        classifier: bool,
        seconds: dict[str, float],
    ) -> tuple[int, int]: ...

    def record_run(self, computed_at: datetime, at: datetime, report: dict[str, Any]) -> None: ...

    def latest_run(self) -> dict[str, Any] | None: ...

    def profile_scores(
        self, profile_id: str, at: datetime, keys: Sequence[str]
    ) -> dict[str, Any]: ...

    def score_matrix(self, keys: Sequence[str], at: datetime) -> pa.Table: ...


class ComputedTraitStore(Protocol):
    """The named computed traits of profiles as of an instant
    (``store.duckdb.computed.DuckDBComputedTraits`` on DuckDB)."""

    def computed_traits(
        self, at: datetime, profile_ids: Sequence[str] | None = None
    ) -> list[dict[str, Any]]: ...


# -- the batch evaluator ----------------------------------------------------------------


class Memberships(Protocol):
    """One batch evaluation's memberships as of ``at`` (``store.duckdb.batch.BatchResult``
    on DuckDB): held in the store's ``table``, one boolean column per segment."""

    at: datetime
    table: str

    @property
    def columns(self) -> Mapping[str, str]:
        """Segment id -> its column in ``table``."""
        ...

    def size(self, segment_id: str) -> int: ...

    def sizes(self) -> dict[str, int]: ...

    def members(self, segment_id: str) -> list[str]:
        """Sorted profile ids."""
        ...

    def membership_map(self) -> dict[str, set[str]]: ...


class BatchEvaluator(Protocol):
    """Runs the batch evaluator's compiled plan where the events are
    (``store.duckdb.batch.DuckDBBatch`` on DuckDB)."""

    def evaluate(
        self, segments: Iterable[Segment], at: datetime, *, only: Iterable[str] | None = None
    ) -> Memberships:
        """Memberships of ``segments`` (or ``only`` those and what they reference) as of
        ``at``."""
        ...


# -- the live evaluator's history -------------------------------------------------------


class HistoryReads(Protocol):
    """Stored history as the live evaluator reads it (``store.duckdb.history.HistoryReader``
    on DuckDB): events and trait writes in batches, bounded by their insertion numbers
    (``seq`` for events, ``wseq`` for trait writes), and the profiles and merges since a
    mark."""

    def max_seq(self) -> int: ...

    def max_wseq(self, after: int = 0) -> int: ...

    def events(
        self,
        names: Collection[str],
        paths: Collection[str],
        *,
        after_seq: int | None = None,
        upto_seq: int | None = None,
        profiles: Collection[str] | None = None,
        order: Literal["profile", "time"] = "profile",
        after_ts: int | None = None,
        upto_ts: int | None = None,
    ) -> Iterator[list[EventRow]]: ...

    def traits(
        self,
        keys: Collection[str],
        *,
        after_seq: int | None = None,
        upto_seq: int | None = None,
        standalone: bool = True,
        upto_wseq: int | None = None,
        profiles: Collection[str] | None = None,
        order: Literal["profile", "time"] = "profile",
        after_ts: int | None = None,
        upto_ts: int | None = None,
    ) -> Iterator[list[StoredTrait]]: ...

    def standalone_traits(
        self,
        keys: Collection[str],
        *,
        after_wseq: int,
        upto_wseq: int,
        after_seq: int,
        upto_seq: int,
    ) -> Iterator[list[StoredTrait]]: ...

    def profiles_after(self, after_seq: int, upto_seq: int | None = None) -> list[str]: ...

    def profiles_written_after(self, after_wseq: int, upto_wseq: int) -> list[str]: ...

    def profile_ids(self) -> list[str]: ...

    def has_profile(self, profile_id: str) -> bool: ...

    def static_members(self) -> dict[str, set[str]]:
        """Profile id -> static segment ids it is a member of."""
        ...

    def merge_mark(self) -> tuple[datetime | None, frozenset[tuple[str, str]]]: ...

    def merges_since(
        self, mark: tuple[datetime | None, frozenset[tuple[str, str]]]
    ) -> list[tuple[str, str]]: ...


MessageFieldReader = Callable[[Mapping[str, Any]], dict[str, Any] | None]
"""A message's properties/context/traits -> its fields exactly as the history reader
would read them back once stored, or None when that cannot be told from the message."""


class StoreSnapshot(Protocol):
    """One snapshot of the store, readable without the store lock
    (``store.duckdb.live.LiveSnapshot`` on DuckDB)."""

    @property
    def reader(self) -> HistoryReads: ...

    @property
    def registry(self) -> SegmentStore: ...

    @property
    def batch(self) -> BatchEvaluator: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


class LiveStore(Protocol):
    """What the live evaluator reads and writes (``store.duckdb.live.DuckDBLive`` on
    DuckDB): the history reader, the change log, one transaction for the changes and
    marks of a step, and the snapshots saves are prepared on."""

    @property
    def reader(self) -> HistoryReads: ...

    @property
    def log(self) -> ChangeLog: ...

    def first_seen(self) -> dict[str, datetime]: ...

    def first_event_at(self) -> datetime | None: ...

    def begin(self) -> bool:
        """Open a transaction; False when one is already open."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def open_snapshot(self) -> StoreSnapshot: ...

    def message_fields(
        self, paths: Collection[str], fields: Mapping[str, FieldInfo], columns: Collection[str]
    ) -> MessageFieldReader:
        """How the fields in ``paths`` of a message just stored read back, given the
        field catalog and the events table's columns after its load."""
        ...


# -- cost estimates -------------------------------------------------------------------


class ReadCounts(Protocol):
    """How many stored rows features read, as of an instant: events by the evaluators'
    name (page/screen calls by ``model.definition.PAGE_CALLS``/``SCREEN_CALLS``) and
    trait writes by key (``store.duckdb.estimate.DuckDBReadCounts`` on DuckDB)."""

    def event_counts(self, names: Iterable[str], at: datetime) -> dict[str, int]: ...

    def trait_rows(self, keys: Iterable[str], at: datetime) -> dict[str, int]: ...


# -- segment analytics ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BucketCounts:
    """Entries and exits in the change log per segment (rows) and bucket (columns), and
    the log's running size of each segment at the period start; ``logged``: the segments
    the log has any change of."""

    size_start: npt.NDArray[np.int64]
    entered: npt.NDArray[np.int64]
    exited: npt.NDArray[np.int64]
    logged: npt.NDArray[np.bool_]


class AnalyticsStore(Protocol):
    """What segment analytics read (``store.duckdb.analytics.DuckDBAnalytics`` on
    DuckDB): set-wise, one query per read, as NumPy arrays whose rows follow the
    profiles of a batch evaluation."""

    def period_aggregates(
        self, memberships: Memberships, segment_ids: Sequence[str], start: datetime, end: datetime
    ) -> tuple[npt.NDArray[np.bool_], MemberAggregates]:
        """Membership (profiles x segments) beside each profile's aggregates over
        ``start < timestamp <= end`` and its scores as of ``end``."""
        ...

    def membership_matrix(
        self, memberships: Memberships, segment_ids: Sequence[str]
    ) -> npt.NDArray[np.bool_]:
        """Profiles (in profile id order) x segments."""
        ...

    def places(
        self,
        stages: Sequence[str],
        at: datetime,
        *,
        evaluated: Memberships | None = None,
        logged: Collection[str] = (),
    ) -> npt.NDArray[np.int64]:
        """Each known profile's stage index at ``at`` (in profile id order), or -1: the
        ``logged`` stages' membership from the change log's state at ``at``, the
        others' from ``evaluated``."""
        ...

    def first_entries(self, segment_ids: Sequence[str], until: datetime) -> npt.NDArray[np.int64]:
        """First enter instants (microseconds) per profile and segment from the log."""
        ...

    def bucket_counts(
        self, segment_ids: Sequence[str], start: datetime, step_us: int, buckets: int
    ) -> BucketCounts: ...

    def evaluated_sizes(
        self, segment_ids: Sequence[str], instants: Sequence[datetime]
    ) -> npt.NDArray[np.int64]: ...


# -- overview: pickers and dashboards ----------------------------------------------------


@dataclass(frozen=True)
class NameStats:
    """One track event name: stored events, the latest and the earliest timestamp, and
    when the store first received one (None: no receipt time stored)."""

    name: str
    count: int
    last_seen: datetime
    first_seen: datetime
    first_received: datetime | None = None


@dataclass(frozen=True)
class FieldStats:
    """One event field in a sample of an event's rows: ``store_type`` is the store's
    column type (``DOUBLE``, ``BOOLEAN``, ``VARCHAR``, or ``JSON:<json type>``),
    ``present`` how many sampled rows carry it, ``examples`` its most common values."""

    path: str
    store_type: str
    present: int
    examples: list[Any]


@dataclass(frozen=True)
class TraitStats:
    """One trait key: its most common kind (``number``, ``string``, ``bool`` or
    ``json:<json type>``), the profiles holding a current value, common values."""

    key: str
    kind: str
    profiles: int
    examples: list[Any]


@dataclass(frozen=True)
class PageStats:
    """Page calls: how many are stored, the most common paths and page names."""

    count: int
    paths: list[str]
    names: list[str]


class OverviewStore(Protocol):
    """What the builder's pickers and the dashboard read
    (``store.duckdb.overview.DuckDBOverview`` on DuckDB); every read is bounded."""

    def event_names(self, received: bool = False) -> list[NameStats]: ...

    def event_fields(self, name: str, sample: int, examples: int) -> list[FieldStats]: ...

    def traits(self, examples: int) -> list[TraitStats]: ...

    def pages(self, top: int) -> PageStats: ...

    def saved_at(self) -> dict[str, datetime]: ...

    def first_changes(self) -> dict[str, datetime]: ...

    def entered_at(
        self, segment_id: str, profile_ids: Sequence[str], until: datetime | None = None
    ) -> dict[str, datetime]: ...

    def event_counts_since(self, instants: Sequence[datetime]) -> list[int]: ...

    def name_windows(self, now: datetime, windows: int) -> list[tuple[str, int, int]]: ...


class ConsentStore(Protocol):
    """Each profile's consent per channel (``segflow.model.consent``)."""

    def consent(
        self, profile_ids: Sequence[str] | None = None, channel: str | None = None
    ) -> dict[str, dict[str, Consent]]: ...


# -- API keys -----------------------------------------------------------------------------


class ApiKeyStore(Protocol):
    """The API keys (``store.duckdb.keys.KeyStore`` on DuckDB): only digests are
    stored; the active keys are held in memory, so verifying one runs no query."""

    listeners: list[Callable[[], None]]
    """Called after every change of the active keys."""

    def create(self, kind: str, name: str = "", origins: Sequence[str] = ()) -> NewKey: ...

    def revoke(self, key_id: str) -> ApiKey: ...

    def verify(self, token: str) -> ApiKey | None: ...

    def is_active(self, key_id: str) -> bool: ...

    def admin_digests(self) -> list[str]: ...

    def publishable(self) -> dict[str, list[str]]:
        """The active publishable keys' digests -> their allowed origins."""
        ...

    def list(self) -> list[ApiKey]: ...
