"""One DuckDB file opened for the service: its connection and every store object over
it, so that the service holds store objects and never the connection."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

import duckdb

from segflow.store.duckdb.analytics import DuckDBAnalytics
from segflow.store.duckdb.batch import DuckDBBatch
from segflow.store.duckdb.changes import MembershipChangeLog
from segflow.store.duckdb.computed import DuckDBComputedTraits
from segflow.store.duckdb.consent import DuckDBConsent
from segflow.store.duckdb.estimate import DuckDBReadCounts
from segflow.store.duckdb.live import DuckDBLive
from segflow.store.duckdb.overview import DuckDBOverview
from segflow.store.duckdb.profiles import DuckDBProfileStore
from segflow.store.duckdb.scores import DuckDBScores
from segflow.store.duckdb.segments import SegmentRegistry
from segflow.store.duckdb.store import DuckDBStore
from segflow.store.errors import StoreHeld, StoreUnavailable

if TYPE_CHECKING:
    from segflow.model.consent import UnknownConsent
    from segflow.model.definition import Holdout
    from segflow.store.duckdb.destinations import DestinationStore
    from segflow.store.duckdb.experiments import DuckDBExperiments
    from segflow.store.duckdb.keys import KeyStore
    from segflow.store.engines import LoadReport


class DuckDBStores:
    """The store objects over one DuckDB file, all on its one connection."""

    def __init__(self, path: str) -> None:
        try:
            self.events = DuckDBStore(path)
        except duckdb.IOException as e:
            reason = str(e)
            if "lock" not in reason.lower():
                raise StoreUnavailable(reason) from None
            holder = re.search(r"\(PID (\d+)\)", reason)
            raise StoreHeld(reason, holder.group(1) if holder else None) from None
        """Events and profiles: ingestion (with the engine's tuning knobs) and reads."""
        con = self.events.con
        self.registry = SegmentRegistry(con)
        self.profiles = DuckDBProfileStore(con)
        self.batch = DuckDBBatch(con)
        self.scores = DuckDBScores(con)
        self.computed = DuckDBComputedTraits(con)
        self.read_counts = DuckDBReadCounts(con)
        self.analytics = DuckDBAnalytics(con)
        self.overview = DuckDBOverview(con)
        self.consent = DuckDBConsent(con)

    def close(self) -> None:
        self.events.close()

    def copy_to(self, url: str) -> LoadReport:
        """Replace the batch tables of the engine at ``url`` with this store's
        (``store.engines``)."""
        from segflow.store.engines import engine_for

        return engine_for(url).load(self.events.con, url)

    def changes(self) -> MembershipChangeLog:
        """The stored membership change log."""
        return MembershipChangeLog(self.events.con)

    def live(self) -> DuckDBLive:
        """What the live evaluator reads and writes."""
        return DuckDBLive(self.events.con)

    def experiments(self) -> DuckDBExperiments:
        """The per-arm outcomes of experiment reports."""
        from segflow.store.duckdb.experiments import DuckDBExperiments

        return DuckDBExperiments(self.events.con)

    def keys(self) -> KeyStore:
        """The API keys (read into memory on opening)."""
        from segflow.store.duckdb.keys import KeyStore

        return KeyStore(self.events.con)

    def destinations(
        self,
        silent: Callable[[], Collection[str]] = frozenset,
        holdouts: Callable[[], Mapping[str, Holdout]] = dict,
        suppressed: Callable[[str], bool] = lambda _id: False,
        unknown: UnknownConsent | None = None,
    ) -> DestinationStore:
        """The destinations, their deliveries and syncs (``silent``: segments whose
        changes are not delivered; ``holdouts``: each segment's holdout, whose members
        are left out)."""
        from segflow.store.duckdb.destinations import DestinationStore

        return DestinationStore(self.events.con, silent, holdouts, suppressed, unknown)
