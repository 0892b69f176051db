"""Destinations, their delivery outbox, full syncs and the delivery log in DuckDB (the
records it hands out: ``store.records.destinations``).

A destination (webhook, Redis stream, NATS JetStream subject, files in a directory)
subscribes to segments and priority groups (a group's changes are its resolved
members', ``group:segment``).  Change deliveries are derived from the membership change
log: ``enqueue`` turns changes into one pending row per subscribed destination and
advances a persisted cursor in the same transaction, so after a crash the changes past
the cursor are enqueued again and none is lost or doubled (``(destination_id,
change_seq)`` is unique by construction).  Full syncs are rows too (requested, running,
done, failed), so a sync cut short by a crash runs again after the restart.

Older stores kept webhooks in ``webhooks`` / ``webhook_deliveries``: opening one moves
their rows here once (a webhook is a destination of kind ``webhook``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import orjson
import pyarrow as pa

from segflow.model.changes import LoggedChange
from segflow.model.consent import Consent, Decision, UnknownConsent, decide
from segflow.model.definition import Holdout, held_out
from segflow.model.groups import split_resolved
from segflow.model.time import utcnow
from segflow.store.duckdb.catalog import has_table
from segflow.store.duckdb.consent import DuckDBConsent
from segflow.store.duckdb.erasure import PSEUDONYM_PREFIX, scrub
from segflow.store.duckdb.sql import quote_ident, quote_str
from segflow.store.records.destinations import (
    DEAD,
    DELIVERED,
    MARK,
    PENDING,
    SKIP,
    Delivery,
    Destination,
    Sync,
    change_record,
)

DDL: Final = """
CREATE SEQUENCE IF NOT EXISTS destination_delivery_seq;
CREATE SEQUENCE IF NOT EXISTS destination_sync_seq;
CREATE TABLE IF NOT EXISTS destinations (
    id         VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    kind       VARCHAR NOT NULL,
    spec       JSON NOT NULL,
    created_at TIMESTAMP NOT NULL,
    from_seq   BIGINT NOT NULL DEFAULT 0,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS destination_deliveries (
    id              BIGINT NOT NULL,
    destination_id  VARCHAR NOT NULL,
    change_seq      BIGINT NOT NULL,
    idempotency_key VARCHAR NOT NULL,
    profile_id      VARCHAR NOT NULL,
    body            JSON NOT NULL,
    status          VARCHAR NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMP,
    last_error      VARCHAR,
    created_at      TIMESTAMP NOT NULL,
    delivered_at    TIMESTAMP
);
CREATE TABLE IF NOT EXISTS destination_cursor (
    name VARCHAR NOT NULL,
    seq  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS destination_syncs (
    id             BIGINT NOT NULL,
    destination_id VARCHAR NOT NULL,
    trigger        VARCHAR NOT NULL,
    status         VARCHAR NOT NULL,
    requested_at   TIMESTAMP NOT NULL,
    started_at     TIMESTAMP,
    finished_at    TIMESTAMP,
    members        BIGINT NOT NULL DEFAULT 0,
    held_out       BIGINT NOT NULL DEFAULT 0,
    sent           BIGINT NOT NULL DEFAULT 0,
    detail         JSON,
    error          VARCHAR
);
"""
"""``destinations.spec`` holds what the destination was configured with (segments,
events, field mapping, batching, schedule, the kind's settings); a destination receives
the changes logged after it was created (``seq > from_seq``).  A delivery's ``status``
is pending | delivered | dead (``dead`` is the dead-letter list); a sync's is
requested | running | done | failed."""

_DELIVERY_COLS: Final = (
    "id, destination_id, change_seq, idempotency_key, body, status, attempts,"
    " next_attempt_at, last_error"
)
_SYNC_COLS: Final = (
    "id, destination_id, trigger, status, requested_at, started_at, finished_at,"
    " members, held_out, sent, detail, error"
)


class DestinationStore:
    """Destinations, the delivery outbox and its cursor, syncs, on the server's
    connection (callers hold the server lock)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        silent: Callable[[], Collection[str]] = frozenset,
        holdouts: Callable[[], Mapping[str, Holdout]] = dict,
        suppressed: Callable[[str], bool] = lambda _id: False,
        unknown: UnknownConsent | None = None,
    ) -> None:
        self.con = con
        self.unknown = unknown or UnknownConsent()
        """What a profile that never stated consent gets, where its destination does not
        say (by region)."""
        con.execute(DDL)
        _migrate_webhooks(con)
        self._active: list[Destination] | None = None
        self.silent = silent
        """The segments whose changes get no delivery (``emit_events: false``)."""
        self.holdouts = holdouts
        """Each segment's holdout: its members are left out (or marked)."""
        self.suppressed = suppressed
        """Whether an id is on the erasure suppression list: never sent anywhere."""
        self.consents = DuckDBConsent(con)

    # -- destinations ----------------------------------------------------------
    def active(self) -> list[Destination]:
        """Every destination, cached (this store is the only writer of the table)."""
        if self._active is None:
            self._active = self.destinations()
        return list(self._active)

    def create(self, dest: Destination, *, prefix: str = "dst_") -> Destination:
        """Store ``dest`` under a new id (its ``id`` is ignored)."""
        dest = replace(dest, id=prefix + secrets.token_hex(8), created_at=utcnow())
        self.con.execute(
            "INSERT INTO destinations (id, name, kind, spec, created_at, from_seq)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                dest.id,
                dest.name or dest.id,
                dest.kind,
                orjson.dumps(dest.spec()).decode(),
                dest.created_at,
                dest.from_seq,
            ],
        )
        self._active = None
        return self.get(dest.id)

    def update(self, destination_id: str, dest: Destination) -> Destination:
        """Replace a destination's configuration (its id, creation and the changes it
        started from stay); deliveries already queued keep their bodies."""
        self.get(destination_id)
        self.con.execute(
            "UPDATE destinations SET name = ?, kind = ?, spec = ? WHERE id = ? AND NOT deleted",
            [dest.name or destination_id, dest.kind, orjson.dumps(dest.spec()).decode(),
             destination_id],
        )  # fmt: skip
        self._active = None
        return self.get(destination_id)

    def destinations(
        self, kind: str | None = None, segment_id: str | None = None
    ) -> list[Destination]:
        sql = (
            "SELECT id, name, kind, spec, created_at, from_seq FROM destinations WHERE NOT deleted"
        )
        params: list[Any] = []
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        rows = self.con.execute(sql + " ORDER BY created_at, id", params).fetchall()
        out = [_destination(r) for r in rows]
        if segment_id is not None:
            resolved = split_resolved(segment_id)
            out = [
                d
                for d in out
                if segment_id in d.segments or (resolved is not None and resolved[0] in d.groups)
            ]
        return out

    def get(self, destination_id: str) -> Destination:
        for d in self.destinations():
            if d.id == destination_id:
                return d
        raise KeyError(f"unknown destination {destination_id!r}")

    def delete(self, destination_id: str) -> None:
        """Remove a destination; its pending deliveries go to the dead-letter list."""
        self.get(destination_id)
        self.con.execute("UPDATE destinations SET deleted = TRUE WHERE id = ?", [destination_id])
        self.con.execute(
            "UPDATE destination_deliveries SET status = 'dead', next_attempt_at = NULL,"
            " last_error = 'destination deleted'"
            " WHERE destination_id = ? AND status = 'pending'",
            [destination_id],
        )
        self.con.execute(
            "UPDATE destination_syncs SET status = 'failed', error = 'destination deleted'"
            " WHERE destination_id = ? AND status IN ('requested', 'running')",
            [destination_id],
        )
        self._active = None

    # -- outbox ----------------------------------------------------------------
    def cursor(self) -> int:
        row = self.con.execute(
            "SELECT max(seq) FROM destination_cursor WHERE name = 'changes'"
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def start_seq(self) -> int:
        """Where enqueueing resumes: the cursor, or past what no destination wants."""
        floor = min((d.from_seq for d in self.active() if d.changes), default=0)
        return max(self.cursor(), floor)

    def enqueue(self, changes: Iterable[LoggedChange]) -> int:
        """Pending deliveries for every change past the cursor that a destination wants
        (held-out members left out, or marked); advances the cursor in the same
        transaction.  The mapped traits are read now, so a retry sends what the first
        attempt did."""
        cursor = self.start_seq()
        items = [c for c in changes if c.seq > cursor]
        if not items:
            return 0
        by_segment: dict[str, list[Destination]] = {}
        by_group: dict[str, list[Destination]] = {}
        for d in self.active():
            if d.changes:
                for sid in d.segments:
                    by_segment.setdefault(sid, []).append(d)
                for gid in d.groups:
                    by_group.setdefault(gid, []).append(d)
        silent = set(self.silent())
        holdouts = self.holdouts()
        wanted: list[tuple[LoggedChange, Destination, bool]] = []
        for c in items:
            if c.segment_id in silent or self.suppressed(c.profile_id):
                continue
            group = c.group_fields()["group"]
            subscribed = by_segment.get(c.segment_id, [])
            if group is not None and group in by_group:
                subscribed = list({d.id: d for d in [*subscribed, *by_group[group]]}.values())
            for d in subscribed:
                if c.seq <= d.from_seq or ("entered" if c.entered else "exited") not in d.events:
                    continue
                held = held_out(holdouts, c.segment_id, c.profile_id)
                if held and d.held_out == SKIP:
                    continue
                wanted.append((c, d, held))
        wanted = self.consented(wanted)
        keys = sorted({k for _, d, _ in wanted for k, _ in d.fields})
        traits = self.traits({c.profile_id for c, d, _ in wanted if d.fields}, keys)
        now = utcnow()
        cols: dict[str, list[Any]] = {
            "destination_id": [], "change_seq": [], "idempotency_key": [], "profile_id": [],
            "body": [],
        }  # fmt: skip
        for c, d, held in wanted:
            mine = traits.get(c.profile_id, {})
            mapped = {out: mine.get(k) for k, out in d.fields}
            rec = change_record(c, d, held, mapped)
            cols["destination_id"].append(d.id)
            cols["change_seq"].append(c.seq)
            cols["idempotency_key"].append(rec["idempotency_key"])
            cols["profile_id"].append(c.profile_id)
            cols["body"].append(orjson.dumps(rec).decode())
        self.con.execute("BEGIN TRANSACTION")
        try:
            if wanted:
                self.con.register("_sf_new_deliveries", pa.table(cols))
                try:
                    self.con.execute(
                        "INSERT INTO destination_deliveries (id, destination_id, change_seq,"
                        " idempotency_key, profile_id, body, status, attempts, next_attempt_at,"
                        " created_at) SELECT nextval('destination_delivery_seq'),"
                        " n.destination_id, n.change_seq, n.idempotency_key, n.profile_id,"
                        " n.body, 'pending', 0, $now, $now FROM (SELECT n.*"
                        " FROM _sf_new_deliveries n ANTI JOIN destination_deliveries d"
                        " ON d.destination_id = n.destination_id AND d.change_seq = n.change_seq"
                        " ORDER BY n.change_seq, n.destination_id) n",
                        {"now": now},
                    )
                finally:
                    self.con.unregister("_sf_new_deliveries")
            self.con.execute("DELETE FROM destination_cursor WHERE name = 'changes'")
            self.con.execute(
                "INSERT INTO destination_cursor VALUES ('changes', ?)", [max(c.seq for c in items)]
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return len(wanted)

    def consented(
        self, wanted: list[tuple[LoggedChange, Destination, bool]]
    ) -> list[tuple[LoggedChange, Destination, bool]]:
        """``wanted`` less the changes whose destination's channel the profile has not
        consented to (the consent as it stands when the change is queued)."""
        channels = {d.channel for _, d, _ in wanted if d.channel}
        if not channels:
            return wanted
        pids = sorted({c.profile_id for c, d, _ in wanted if d.channel})
        states = self.consents.consent(pids)
        regions = self.regions([p for p in pids if p not in states])
        return [
            (c, d, h)
            for c, d, h in wanted
            if not d.channel
            or self.may_receive(d, states.get(c.profile_id, {}), regions, c.profile_id)
        ]

    def reachable(self, dest: Destination, members: Sequence[str]) -> list[str]:
        """Of ``members``, those ``dest`` may receive: not suppressed, and consented on
        its channel when it has one."""
        out = [m for m in members if not self.suppressed(m)]
        if not dest.channel:
            return out
        states = self.consents.consent(None, dest.channel)
        regions: dict[str, str] = {}
        if dest.unknown_consent is None and self.unknown.regions:
            regions = self.regions([m for m in out if m not in states])
        return [m for m in out if self.may_receive(dest, states.get(m, {}), regions, m)]

    def may_receive(
        self, dest: Destination, states: Mapping[str, Consent], regions: Mapping[str, str], pid: str
    ) -> bool:
        """Whether ``pid`` (its consent ``states``, its region in ``regions``) may
        receive ``dest``'s channel."""
        return self.decision(dest, states, regions.get(pid)).allowed

    def decision(
        self, dest: Destination, states: Mapping[str, Consent], region: str | None
    ) -> Decision:
        """Whether a profile with consent ``states`` in ``region`` may receive ``dest``'s
        channel, and why."""
        assert dest.channel is not None
        consent = states.get(dest.channel)
        return decide(consent, dest.channel, dest.unknown_consent, self.unknown, region)

    def regions(self, profile_ids: Sequence[str]) -> dict[str, str]:
        """Each profile's region (the configured trait), for the unknown-consent rules;
        profiles without one absent (nothing is read when no region has a rule)."""
        if not self.unknown.regions or not profile_ids:
            return {}
        key = self.unknown.region_trait
        if len(profile_ids) <= 1000:
            traits = self.traits(set(profile_ids), [key])
            return {p: str(t[key]) for p, t in traits.items() if isinstance(t.get(key), str)}
        # a full sync's members: one pass over the key's values beats a long id list
        wanted = set(profile_ids)
        rows = self.con.execute(
            "SELECT profile_id, value FROM current_traits WHERE key = ?", [key]
        ).fetchall()
        out: dict[str, str] = {}
        for pid, value in rows:
            v = orjson.loads(value) if value else None
            if str(pid) in wanted and isinstance(v, str):
                out[str(pid)] = v
        return out

    def traits(
        self, profile_ids: Collection[str], keys: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """The current values of ``keys`` of each of ``profile_ids`` (missing ones absent)."""
        if not profile_ids or not keys:
            return {}
        rows = self.con.execute(
            "SELECT profile_id, key, value FROM current_traits"
            " WHERE list_contains(?, profile_id) AND list_contains(?, key)",
            [sorted(profile_ids), list(keys)],
        ).fetchall()
        out: dict[str, dict[str, Any]] = {}
        for pid, key, value in rows:
            out.setdefault(str(pid), {})[str(key)] = orjson.loads(value) if value else None
        return out

    def due(
        self, now: datetime, limit: int = 500, exclude: Collection[str] = ()
    ) -> dict[str, list[Delivery]]:
        """Pending deliveries whose next attempt is due, oldest first, per destination:
        at most ``limit`` each (a backlog at one does not crowd out the others), none of
        the destinations in ``exclude`` (busy)."""
        rows = self.con.execute(
            f"SELECT {_DELIVERY_COLS} FROM destination_deliveries"
            " WHERE status = 'pending' AND next_attempt_at <= ?"
            " AND destination_id NOT IN (SELECT unnest(?::VARCHAR[]))"
            " QUALIFY row_number() OVER (PARTITION BY destination_id"
            " ORDER BY next_attempt_at, id) <= ? ORDER BY next_attempt_at, id",
            [now, sorted(exclude), limit],
        ).fetchall()
        live = {d.id for d in self.active()}
        out: dict[str, list[Delivery]] = {}
        for row in rows:
            d = _delivery(row)
            if d.destination_id not in live:
                self.con.execute(
                    "UPDATE destination_deliveries SET status = 'dead',"
                    " last_error = 'destination deleted' WHERE id = ?",
                    [d.id],
                )
                continue
            out.setdefault(d.destination_id, []).append(d)
        return out

    def next_due(self, exclude: Collection[str] = ()) -> datetime | None:
        """When the next pending delivery of a destination not in ``exclude`` is due."""
        row = self.con.execute(
            "SELECT min(next_attempt_at) FROM destination_deliveries WHERE status = 'pending'"
            " AND destination_id NOT IN (SELECT unnest(?::VARCHAR[]))",
            [sorted(exclude)],
        ).fetchone()
        return row[0] if row and row[0] is not None else None

    def delivered(self, delivery_ids: Sequence[int], now: datetime) -> None:
        """Mark deliveries sent; an erased profile's exit (under its pseudonym) keeps
        only its type, reason and key (the pseudonym for the id) from then on, and the
        file is scrubbed of the rest."""
        ids = list(delivery_ids)
        row = self.con.execute(
            "SELECT count(*) FROM destination_deliveries"
            " WHERE list_contains(?, id) AND starts_with(profile_id, ?)",
            [ids, PSEUDONYM_PREFIX],
        ).fetchone()
        erased = bool(row and row[0])
        self.con.execute(
            "UPDATE destination_deliveries SET status = 'delivered', attempts = attempts + 1,"
            " delivered_at = $now, next_attempt_at = NULL, last_error = NULL,"
            " idempotency_key = CASE WHEN starts_with(profile_id, $erased)"
            " THEN replace(idempotency_key, body->>'$.profile_id', profile_id)"
            " ELSE idempotency_key END,"
            " body = CASE WHEN starts_with(profile_id, $erased) THEN json_object('type',"
            " body->>'$.type', 'idempotency_key',"
            " replace(idempotency_key, body->>'$.profile_id', profile_id),"
            " 'reason', body->>'$.reason') ELSE body END"
            " WHERE list_contains($ids, id)",
            {"now": now, "ids": ids, "erased": PSEUDONYM_PREFIX},
        )
        if erased:
            scrub(self.con, ["destination_deliveries"])

    def failed(
        self,
        deliveries: Sequence[Delivery],
        error: str,
        now: datetime,
        backoff: timedelta,
        max_attempts: int,
    ) -> None:
        """Schedule each one's next attempt ``backoff * 2**attempts`` later, or
        dead-letter it."""
        for delivery in deliveries:
            attempts = delivery.attempts + 1
            if attempts >= max_attempts:
                self.con.execute(
                    "UPDATE destination_deliveries SET status = 'dead', attempts = ?,"
                    " next_attempt_at = NULL, last_error = ? WHERE id = ?",
                    [attempts, error[:500], delivery.id],
                )
                continue
            delay = backoff * (2 ** (attempts - 1))
            self.con.execute(
                "UPDATE destination_deliveries SET attempts = ?, next_attempt_at = ?,"
                " last_error = ? WHERE id = ?",
                [attempts, now + delay, error[:500], delivery.id],
            )

    def deliveries(
        self,
        *,
        status: str | None = None,
        destination_id: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        sql = f"SELECT {_DELIVERY_COLS} FROM destination_deliveries WHERE TRUE"
        params: list[Any] = []
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if destination_id is not None:
            sql += " AND destination_id = ?"
            params.append(destination_id)
        if kind is not None:
            sql += " AND destination_id IN (SELECT id FROM destinations WHERE kind = ?)"
            params.append(kind)
        params.append(limit)
        rows = self.con.execute(sql + " ORDER BY id LIMIT ?", params).fetchall()
        return [_delivery(r) for r in rows]

    def counts(self, destination_id: str) -> dict[str, int]:
        """Deliveries of one destination per status."""
        rows = self.con.execute(
            "SELECT status, count(*) FROM destination_deliveries WHERE destination_id = ?"
            " GROUP BY status",
            [destination_id],
        ).fetchall()
        out = {PENDING: 0, DELIVERED: 0, DEAD: 0}
        out.update({str(s): int(n) for s, n in rows})
        return out

    def health(self, destination_id: str) -> tuple[int, str | None]:
        """(pending deliveries that failed at least once, the latest delivery error)."""
        row = self.con.execute(
            "SELECT count(*) FILTER (WHERE status = 'pending' AND attempts > 0),"
            " arg_max(last_error, id) FILTER (WHERE last_error IS NOT NULL)"
            " FROM destination_deliveries WHERE destination_id = ?",
            [destination_id],
        ).fetchone()
        if row is None:
            return 0, None
        return int(row[0] or 0), row[1]

    def replay(
        self,
        ids: Sequence[int] | None = None,
        now: datetime | None = None,
        *,
        destination_id: str | None = None,
        kind: str | None = None,
    ) -> int:
        """Move dead deliveries (all, or the given ids; of one destination or kind) of
        existing destinations back to pending, due now."""
        now = now or utcnow()
        where = (
            " WHERE status = 'dead'"
            " AND destination_id IN (SELECT id FROM destinations WHERE NOT deleted)"
        )
        params: list[Any] = []
        if ids is not None:
            if not ids:
                return 0
            where += " AND list_contains(?, id)"
            params.append(list(ids))
        if destination_id is not None:
            where += " AND destination_id = ?"
            params.append(destination_id)
        if kind is not None:
            where += " AND destination_id IN (SELECT id FROM destinations WHERE kind = ?)"
            params.append(kind)
        row = self.con.execute(
            f"SELECT count(*) FROM destination_deliveries{where}", params
        ).fetchone()
        self.con.execute(
            "UPDATE destination_deliveries SET status = 'pending', attempts = 0,"
            f" next_attempt_at = ?{where}",
            [now, *params],
        )
        return int(row[0]) if row else 0

    # -- syncs -------------------------------------------------------------------
    def request_sync(self, destination_id: str, trigger: str, now: datetime | None = None) -> Sync:
        """A full sync to run; one already waiting is answered instead of a second."""
        self.get(destination_id)
        waiting = self.syncs(destination_id, status="requested")
        if waiting:
            return waiting[0]
        row = self.con.execute(
            "INSERT INTO destination_syncs (id, destination_id, trigger, status, requested_at)"
            " VALUES (nextval('destination_sync_seq'), ?, ?, 'requested', ?) RETURNING id",
            [destination_id, trigger, now or utcnow()],
        ).fetchone()
        assert row is not None
        return self.sync(int(row[0]))

    def sync(self, sync_id: int) -> Sync:
        row = self.con.execute(
            f"SELECT {_SYNC_COLS} FROM destination_syncs WHERE id = ?", [sync_id]
        ).fetchone()
        if row is None:
            raise KeyError(f"unknown sync {sync_id}")
        return _sync(row)

    def syncs(
        self, destination_id: str | None = None, *, status: str | None = None, limit: int = 100
    ) -> list[Sync]:
        sql = f"SELECT {_SYNC_COLS} FROM destination_syncs WHERE TRUE"
        params: list[Any] = []
        if destination_id is not None:
            sql += " AND destination_id = ?"
            params.append(destination_id)
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        params.append(limit)
        rows = self.con.execute(sql + " ORDER BY id DESC LIMIT ?", params).fetchall()
        return [_sync(r) for r in rows]

    def requested_syncs(self, exclude: Collection[str] = ()) -> dict[str, Sync]:
        """The oldest requested sync of each destination not in ``exclude``."""
        out: dict[str, Sync] = {}
        waiting: list[Sync] = self.syncs(status="requested", limit=10_000)
        for s in reversed(waiting):
            if s.destination_id not in exclude and s.destination_id not in out:
                out[s.destination_id] = s
        return out

    def last_sync_request(self, destination_id: str, trigger: str) -> datetime | None:
        row = self.con.execute(
            "SELECT max(requested_at) FROM destination_syncs"
            " WHERE destination_id = ? AND trigger = ?",
            [destination_id, trigger],
        ).fetchone()
        return row[0] if row and row[0] is not None else None

    def start_sync(self, sync_id: int, now: datetime) -> None:
        self.con.execute(
            "UPDATE destination_syncs SET status = 'running', started_at = ? WHERE id = ?",
            [now, sync_id],
        )

    def finish_sync(
        self,
        sync_id: int,
        now: datetime,
        *,
        members: int,
        held: int,
        sent: int,
        detail: Any = None,
        error: str | None = None,
    ) -> None:
        self.con.execute(
            "UPDATE destination_syncs SET status = ?, finished_at = ?, members = ?,"
            " held_out = ?, sent = ?, detail = ?, error = ? WHERE id = ?",
            [
                "failed" if error else "done",
                now,
                members,
                held,
                sent,
                orjson.dumps(detail).decode() if detail is not None else None,
                error[:500] if error else None,
                sync_id,
            ],
        )

    def resume_syncs(self) -> int:
        """Syncs a crash cut short run again: back to requested."""
        row = self.con.execute(
            "SELECT count(*) FROM destination_syncs WHERE status = 'running'"
        ).fetchone()
        self.con.execute(
            "UPDATE destination_syncs SET status = 'requested', started_at = NULL"
            " WHERE status = 'running'"
        )
        return int(row[0]) if row else 0

    def member_traits(
        self, members: Sequence[str], fields: Sequence[tuple[str, str]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """(profile id, mapped traits) of each of ``members``."""
        traits = self.traits(members, [k for k, _ in fields])
        return [(pid, {out: traits.get(pid, {}).get(k) for k, out in fields}) for pid in members]

    def write_members(
        self,
        segment_id: str,
        members: Sequence[str],
        fields: Sequence[tuple[str, str]],
        path: Path,
        fmt: str,
    ) -> int:
        """Write ``members`` of ``segment_id`` with their mapped traits (one column each,
        typed where every value has one kind) to ``path`` as CSV, Parquet or JSON Lines;
        returns the rows written."""
        con = self.con
        con.register(
            "_sf_sync_ids",
            pa.table({"profile_id": pa.array(list(members), pa.string())}),
        )
        try:
            keys = [k for k, _ in fields]
            kinds = dict(
                con.execute(
                    "SELECT key, list(DISTINCT kind) FROM traits"
                    " WHERE list_contains(?, key) AND kind <> 'null' GROUP BY key",
                    [keys],
                ).fetchall()
            )
            columns: list[str] = []
            params: list[Any] = []
            for key, out in fields:
                ks = kinds.get(key) or []
                value = (
                    {"number": "num", "string": "str", "bool": "bool"}.get(ks[0], "")
                    if len(ks) == 1
                    else ""
                ) or (
                    "coalesce(str, CAST(num AS VARCHAR), CAST(bool AS VARCHAR),"
                    " CAST(json AS VARCHAR))"
                )
                # the latest write of the key wins; a null write leaves the value NULL
                columns.append(
                    f'arg_max({value}, ("timestamp", message_id)) FILTER (WHERE key = ?)'
                    f" AS {quote_ident(out)}"
                )
                params.append(key)
            names = [quote_ident(out) for _, out in fields]
            select = ", ".join([f"{quote_str(segment_id)} AS segment_id", "i.profile_id", *names])
            join = ""
            if fields:
                join = (
                    f" LEFT JOIN (SELECT profile_id, {', '.join(columns)} FROM traits"
                    " WHERE list_contains(?, key) GROUP BY profile_id) t USING (profile_id)"
                )
                params.append(keys)
            option = {
                "parquet": "FORMAT PARQUET",
                "csv": "FORMAT CSV, HEADER",
                "jsonl": "FORMAT JSON",
            }[fmt]
            con.execute(
                f"COPY (SELECT {select} FROM _sf_sync_ids i{join} ORDER BY i.profile_id)"
                f" TO {quote_str(str(path))} ({option})",
                params,
            )
        finally:
            con.unregister("_sf_sync_ids")
        return len(members)


def _destination(row: Sequence[Any]) -> Destination:
    i, name, kind, spec, created, from_seq = row
    s = orjson.loads(spec)
    return Destination(
        id=str(i),
        name=str(name),
        kind=str(kind),
        segments=tuple(s.get("segments", ())),
        groups=tuple(s.get("groups", ())),
        config=dict(s.get("config", {})),
        events=tuple(s.get("events", ("entered", "exited"))),
        changes=bool(s.get("changes", True)),
        fields=tuple((str(k), str(v)) for k, v in (s.get("fields") or {}).items()),
        batch_size=int(s.get("batch_size", 100)),
        schedule=s.get("schedule"),
        held_out=str(s.get("held_out", SKIP)),
        channel=s.get("channel"),
        unknown_consent=s.get("unknown_consent"),
        created_at=created,
        from_seq=int(from_seq),
    )


def _delivery(row: Sequence[Any]) -> Delivery:
    i, d, s, key, body, status, attempts, nxt, err = row
    raw = body.encode() if isinstance(body, str) else bytes(body)
    return Delivery(int(i), str(d), int(s), str(key), raw, str(status), int(attempts), nxt, err)


def _sync(row: Sequence[Any]) -> Sync:
    i, d, trig, status, req, started, finished, members, held, sent, detail, err = row
    return Sync(
        int(i),
        str(d),
        str(trig),
        str(status),
        req,
        started,
        finished,
        int(members),
        int(held),
        int(sent),
        orjson.loads(detail) if detail else None,
        err,
    )


def _migrate_webhooks(con: duckdb.DuckDBPyConnection) -> None:
    """Move an older store's webhooks and their deliveries here, once."""
    if not has_table(con, "webhooks"):
        return
    con.execute("BEGIN TRANSACTION")
    try:
        hooks = con.execute(
            "SELECT id, segment_id, url, events, secret, created_at, from_seq, deleted"
            " FROM webhooks"
        ).fetchall()
        for i, sid, url, events, secret, created, from_seq, deleted in hooks:
            spec = Destination(
                id=i,
                name=i,
                kind="webhook",
                segments=(sid,),
                config={"url": url, "secret": secret},
                events=tuple(events.split(",")) if events else (),
                batch_size=1,
                held_out=MARK,
            ).spec()
            con.execute(
                "INSERT INTO destinations (id, name, kind, spec, created_at, from_seq, deleted)"
                " VALUES (?, ?, 'webhook', ?, ?, ?, ?)",
                [i, i, orjson.dumps(spec).decode(), created, from_seq, deleted],
            )
        if has_table(con, "webhook_deliveries"):
            con.execute(
                "INSERT INTO destination_deliveries (id, destination_id, change_seq,"
                " idempotency_key, profile_id, body, status, attempts, next_attempt_at,"
                " last_error, created_at, delivered_at)"
                " SELECT nextval('destination_delivery_seq'), webhook_id, change_seq,"
                " concat_ws(':', json_extract_string(body, '$.segment_id'),"
                " json_extract_string(body, '$.profile_id'), change_seq),"
                " json_extract_string(body, '$.profile_id'), body, status, attempts,"
                " next_attempt_at, last_error, created_at, delivered_at FROM webhook_deliveries"
            )
            con.execute("DROP TABLE webhook_deliveries")
        if has_table(con, "webhook_cursor"):
            con.execute(
                "INSERT INTO destination_cursor SELECT 'changes', max(seq) FROM webhook_cursor"
                " HAVING max(seq) IS NOT NULL"
            )
            con.execute("DROP TABLE webhook_cursor")
        con.execute("DROP TABLE webhooks")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
