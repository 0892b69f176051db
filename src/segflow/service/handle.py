"""The handle the shells hold: the CLI, the API and the server call in here.

It wires the store, the segment registry and the batch evaluator together; it builds
no SQL of its own and holds no connection (every statement is in ``segflow.store``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segflow.model import schedule
from segflow.model.definition import (
    DEFAULT_LIMITS,
    Holdout,
    Limits,
    Mention,
    Report,
    Segment,
    load_segment_reports,
)
from segflow.model.errors import DefinitionError, Problem
from segflow.model.time import utcnow
from segflow.store.duckdb.stores import DuckDBStores
from segflow.store.errors import StoreHeld as StoreHeld
from segflow.store.errors import StoreUnavailable as StoreUnavailable

if TYPE_CHECKING:
    from segflow.model.consent import UnknownConsent
    from segflow.store.duckdb.destinations import DestinationStore
    from segflow.store.engines import LoadReport
    from segflow.store.protocols import (
        AnalyticsStore,
        ApiKeyStore,
        BatchEvaluator,
        ChangeLog,
        ComputedTraitStore,
        ConsentStore,
        Memberships,
        OverviewStore,
        ProfileStore,
        ReadCounts,
        ScoreStore,
        SegmentStore,
    )

Progress = Callable[[int, int], None]

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
CLUSTER_TRAITS_AFTER = 2 * 122_880
MB = 1 << 20
"""Trait rows a multi-file load must add before it re-clusters them: two of DuckDB's
row groups (fewer fit in row groups that a scan reads whole anyway)."""
SEGMENT_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class StaticImport:
    """A static list saved: its members (known profiles) and the ids no profile has."""

    segment: Segment
    members: int
    unknown: list[str]


@dataclass(frozen=True)
class Evaluation:
    at: datetime
    sizes: dict[str, int]
    seconds: float


def read_segment_files(path: Path) -> list[Segment]:
    """Every segment in a file or a directory of YAML/JSON files; all problems at once."""
    reports = read_segment_reports(path)
    problems = [p for r in reports for p in r.problems]
    if problems:
        raise DefinitionError(problems)
    return [r.segment for r in reports if r.segment is not None]


def read_segment_reports(path: Path, limits: Limits = DEFAULT_LIMITS) -> list[Report]:
    """The parse report of every segment document in a file or a directory of YAML/JSON
    files, paths prefixed with the file name (a duplicated id is a problem of its own)."""
    files = (
        sorted(p for p in path.iterdir() if p.suffix in SEGMENT_SUFFIXES)
        if path.is_dir()
        else [path]
    )
    if not files:
        raise DefinitionError([Problem(str(path), "no .yaml/.yml/.json segment files found")])
    out: list[Report] = []
    for f in files:

        def at(path: str, f: Path = f) -> str:
            return f"{f.name}: {path}" if path else f.name

        try:
            reports = load_segment_reports(f.read_text(encoding="utf-8"), str(f), limits)
        except DefinitionError as e:
            reports = [Report(None, e.problems, [], None, False)]
        out.extend(
            Report(
                r.segment,
                [Problem(at(p.path), p.message) for p in r.problems],
                [Mention(m.kind, m.name, at(m.path)) for m in r.mentions],
                r.id,
                r.static,
            )
            for r in reports
        )
    seen: dict[str, int] = {}
    for r in out:
        if r.id is not None:
            seen[r.id] = seen.get(r.id, 0) + 1
    dupes = [Problem("id", f"{sid!r} is defined {n} times") for sid, n in seen.items() if n > 1]
    if dupes:
        out.append(Report(None, dupes, [], None, False))
    return out


class Segflow:
    """A segflow instance over one store."""

    def __init__(self, db: str | Path = "segflow.duckdb") -> None:
        self.stores = DuckDBStores(str(db))
        """Every store object over the file (the live evaluator opens its own)."""
        self.store = self.stores.events
        """Events and profiles: ingestion (with the engine's tuning knobs) and reads."""
        self.registry: SegmentStore = self.stores.registry
        self.profiles: ProfileStore = self.stores.profiles
        self.evaluator: BatchEvaluator = self.stores.batch
        self.score_store: ScoreStore = self.stores.scores
        self.computed_store: ComputedTraitStore = self.stores.computed
        self.read_counts: ReadCounts = self.stores.read_counts
        self.analytics: AnalyticsStore = self.stores.analytics
        self.consent: ConsentStore = self.stores.consent
        """Each profile's consent per channel."""
        """What segment analytics read: aggregates per profile, matrices, log counts."""
        self.overview: OverviewStore = self.stores.overview
        """What the builder's pickers and the dashboard read (bounded summaries)."""

    def close(self) -> None:
        close_engine = getattr(self.evaluator, "close", None)
        if self.evaluator is not self.stores.batch and close_engine is not None:
            close_engine()
        self.stores.close()

    def use_engine(self, url: str) -> None:
        """Evaluate batches on the engine at ``url`` (whose tables ``load_engine``
        filled) instead of the store's file; definitions still come from the store.
        Raises ``ValueError`` naming what the engine lacks."""
        from segflow.store.engines import engine_for

        self.evaluator = engine_for(url).batch(url)

    def load_engine(self, url: str) -> LoadReport:
        """Copy the store's events, traits, identities and profiles to the engine at
        ``url``, replacing what its schema held."""
        return self.stores.copy_to(url)

    @property
    def changes(self) -> ChangeLog:
        """The stored membership change log."""
        return self.stores.changes()

    def key_store(self) -> ApiKeyStore:
        """The API keys (read into memory on opening)."""
        return self.stores.keys()

    def destination_store(
        self,
        silent: Callable[[], Collection[str]] = frozenset,
        holdouts: Callable[[], Mapping[str, Holdout]] = dict,
        suppressed: Callable[[str], bool] = lambda _id: False,
        unknown: UnknownConsent | None = None,
    ) -> DestinationStore:
        """The destinations, their deliveries and syncs (``silent``: segments whose
        changes are not delivered; ``holdouts``: each segment's holdout, whose members
        are left out; ``suppressed``: ids on the erasure suppression list, never sent;
        ``unknown``: the unknown-consent rule, by default the configured one)."""
        from segflow.service.consent import configured_unknown_consent  # reads the env

        policy = unknown if unknown is not None else configured_unknown_consent()
        return self.stores.destinations(silent, holdouts, suppressed, policy)

    def batch(
        self, segments: Iterable[Segment], at: datetime, only: Iterable[str] | None = None
    ) -> Memberships:
        """Evaluate ``segments`` (those in ``only``, with what they reference) as of ``at``
        with the batch evaluator."""
        return self.evaluator.evaluate(segments, at, only=only)

    def computed_traits(self, at: datetime, profile_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The computed traits of ``profile_ids`` as of ``at``."""
        return self.computed_store.computed_traits(at, profile_ids)

    # -- events ---------------------------------------------------------------
    def ingest(
        self,
        paths: Sequence[Path],
        *,
        skip_invalid: bool = False,
        progress: Progress | None = None,
        again: bool = False,
    ) -> list[Any]:
        """Load event files; JSON Lines of Segment messages or flat CSV/Parquet tables.

        Each file is stored whole in one transaction with its entry in the load ledger,
        so a load stopped part-way is resumed by running it again: the files stored
        already are skipped unread (``again``: read them anyway; their events are
        then dropped as duplicates by message id).  ``progress(done, total)`` counts
        megabytes of the files, across all of them.

        After several files that wrote a large share of the trait rows, the traits are
        re-clustered by key (``DuckDBStore.compact``): each file's trait rows fill a few
        row groups holding every key, so each per-trait scan of the batch evaluator
        would read every file's row groups.  Events need no such pass: each file's rows
        of one name already fill whole row groups."""
        reports = []
        for p in paths:
            if p.suffix.lower() not in (*JSONL_SUFFIXES, *TABLE_SUFFIXES):
                suffix = p.suffix.lower()
                raise ValueError(
                    f"{p}: unknown file type {suffix or '(none)'}; use .jsonl, .csv or .parquet"
                )
        several = len(paths) > 1  # one file's trait rows are already clustered by key
        traits_before = self._trait_rows() if several else 0
        sizes = [p.stat().st_size if p.is_file() else 0 for p in paths]
        total_mb = max(1, -(-sum(sizes) // MB))
        before = 0
        for p, size in zip(paths, sizes, strict=True):
            part = _file_progress(progress, before, size, total_mb)
            if p.suffix.lower() in JSONL_SUFFIXES:
                reports.append(
                    self.store.ingest_jsonl(
                        [p], skip_invalid=skip_invalid, progress=part, once=not again
                    )
                )
            else:
                reports.append(
                    self.store.ingest_table(
                        p, skip_invalid=skip_invalid, progress=part, once=not again
                    )
                )
            before += size
            if progress is not None:
                progress(min(total_mb, before // MB), total_mb)
        if several:
            total = self._trait_rows()
            added = total - traits_before
            if added >= CLUSTER_TRAITS_AFTER and added * 10 >= total:
                self.store.compact(tables=("traits",))
        return reports

    def _trait_rows(self) -> int:
        return self.store.count_trait_rows()

    # -- segments -------------------------------------------------------------
    def validate(self, path: Path) -> list[Segment]:
        segs = read_segment_files(path)
        self.registry.check(segs)
        return segs

    def apply(self, path: Path) -> list[tuple[Segment, str]]:
        """Validate and save every segment under ``path``; static snapshots are taken now."""
        saved = self.registry.save(read_segment_files(path))
        for seg, status in saved:
            if seg.mode == "static" and status != "unchanged":
                self.snapshot(seg)
        return saved

    def snapshot(self, seg: Segment) -> int:
        """Materialise a static segment: its member list (the ids of known profiles,
        resolved to profile ids), or its condition as of snapshot_at."""
        return self.registry.set_static_members(seg.id, self.draft_members(seg, at=utcnow()))

    def segments(self) -> dict[str, Segment]:
        return self.registry.current()

    def segment(self, segment_id: str) -> Segment:
        seg = self.registry.get(segment_id)
        if seg is None:
            raise KeyError(f"unknown segment {segment_id!r}")
        return seg

    def delete(self, segment_id: str, *, force: bool = False) -> Segment:
        return self.registry.delete(segment_id, force=force)

    # -- evaluation -----------------------------------------------------------
    def evaluate(
        self, at: datetime | None = None, only: Iterable[str] | None = None, *, store: bool = True
    ) -> tuple[Evaluation, Memberships]:
        """Evaluate segments as of ``at`` (default now) in one plan; store memberships."""
        import time

        at = at or utcnow()
        segs = self.registry.current()
        wanted = list(only) if only is not None else None
        for sid in wanted or ():
            if sid not in segs:
                raise KeyError(f"unknown segment {sid!r}")
        started = time.perf_counter()
        result = self.batch(segs.values(), at, only=wanted)
        sizes = result.sizes()
        if store:
            self._store(result, segs)
        return Evaluation(at, sizes, time.perf_counter() - started), result

    def _store(self, result: Memberships, segs: dict[str, Segment]) -> None:
        columns = result.columns
        self.registry.store_evaluation(
            result.table, columns, {sid: segs[sid].version for sid in columns}, result.at
        )

    def import_static(
        self, segment_id: str, csv_path: Path, name: str | None = None
    ) -> StaticImport:
        """Create or replace a static segment from a CSV of profile ids (column
        ``profile_id``, or the first column); ids no profile has are reported, not
        counted."""
        import csv

        with csv_path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            raise ValueError(f"{csv_path}: empty file")
        header = [h.strip() for h in rows[0]]
        column = header.index("profile_id") if "profile_id" in header else 0
        start = 1 if "profile_id" in header else 0
        ids: list[str] = []
        for line, row in enumerate(rows[start:], start=start + 1):
            if len(row) <= column or not row[column].strip():
                raise ValueError(f"{csv_path}:{line}: missing profile id")
            ids.append(row[column].strip())
        seg = Segment(
            id=segment_id, name=name or segment_id, condition=None, mode="static",
            members=tuple(dict.fromkeys(ids)),
        )  # fmt: skip
        ((saved, _),) = self.registry.save([seg])
        n = self.snapshot(saved)
        return StaticImport(saved, n, self.registry.known_profiles(seg.members or ())[1])

    def due_scheduled(self, now: datetime) -> list[str]:
        """Scheduled segments whose cron schedule fired since their last evaluation."""
        last = self.registry.last_evaluated()
        due = []
        for seg in self.registry.current().values():
            if seg.mode != "scheduled" or seg.schedule is None:
                continue
            if seg.id not in last or last[seg.id] < schedule.latest_by(seg.schedule, now):
                due.append(seg.id)
        return sorted(due)

    def run_schedule(self, now: datetime | None = None) -> Evaluation | None:
        """Evaluate (as of now) every scheduled segment that is due; None when none is."""
        now = now or utcnow()
        due = self.due_scheduled(now)
        if not due:
            return None
        evaluation, _ = self.evaluate(now, due)
        return evaluation

    def members(self, segment_id: str, at: datetime | None = None) -> list[str]:
        """Members of a saved segment as of ``at`` (default now) by the batch evaluator:
        every "members of S at t" outside the live evaluator comes from here or from
        ``draft_members``.  A static segment answers with its stored list."""
        seg = self.segment(segment_id)
        if seg.mode == "static":
            return self.registry.static_members(segment_id)
        segs = self.registry.current()
        return self.batch(segs.values(), at or utcnow(), only=[segment_id]).members(segment_id)

    def draft_members(
        self, draft: Segment, others: Iterable[Segment] = (), at: datetime | None = None
    ) -> list[str]:
        """Members of ``draft`` as of ``at`` (default now) were it saved now, together
        with ``others`` saved in the same batch (raises DefinitionError on cycles and
        unknown references).  A static draft: its known profiles, or its condition as
        of its snapshot instant."""
        segs = self.registry.check([*others, draft])
        if draft.mode == "static":
            if draft.members is not None:
                return self.registry.known_profiles(draft.members)[0]
            assert draft.condition is not None and draft.snapshot_at is not None
            segs[draft.id] = replace(draft, mode="realtime", snapshot_at=None)
            at = draft.snapshot_at
        return self.batch(segs.values(), at or utcnow(), only=[draft.id]).members(draft.id)


def open_store(db: Path) -> Segflow:
    """Open the store at ``db``; the engine refusing the file raises ``StoreHeld`` (a
    lock another process holds) or ``StoreUnavailable``."""
    return Segflow(db)


def remove_store(db: Path) -> None:
    """Delete the store file and its write-ahead log, so the next open starts empty."""
    for f in (db, db.with_name(db.name + ".wal")):
        f.unlink(missing_ok=True)


def _file_progress(
    progress: Progress | None, before: int, size: int, total_mb: int
) -> Progress | None:
    """One file's own ``progress(done, total)`` (bytes, or steps of a table load) as
    megabytes of the whole load, ``before`` bytes of earlier files included."""
    if progress is None:
        return None

    def update(done: int, total: int) -> None:
        share = done / total if total else 0.0
        progress(min(total_mb, int((before + share * size) // MB)), total_mb)

    return update
