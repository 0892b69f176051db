"""Webhook destinations and their deliveries in DuckDB: an outbox that survives restarts.

Deliveries are derived from the membership change log: ``enqueue`` turns changes into
one pending row per matching destination and advances a persisted cursor in the same
transaction, so after a crash the changes past the cursor are enqueued again and none
is lost or doubled (``(webhook_id, change_seq)`` is unique by construction).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import duckdb
import orjson

from segflow.model.changes import LoggedChange
from segflow.model.definition import Holdout, held_out
from segflow.model.time import format_instant, utcnow

DDL: Final = """
CREATE SEQUENCE IF NOT EXISTS webhook_delivery_seq;
CREATE TABLE IF NOT EXISTS webhooks (
    id         VARCHAR NOT NULL,
    segment_id VARCHAR NOT NULL,
    url        VARCHAR NOT NULL,
    events     VARCHAR NOT NULL,
    secret     VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    from_seq   BIGINT NOT NULL DEFAULT 0,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id              BIGINT NOT NULL,
    webhook_id      VARCHAR NOT NULL,
    change_seq      BIGINT NOT NULL,
    body            JSON NOT NULL,
    status          VARCHAR NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMP,
    last_error      VARCHAR,
    created_at      TIMESTAMP NOT NULL,
    delivered_at    TIMESTAMP
);
CREATE TABLE IF NOT EXISTS webhook_cursor (
    name VARCHAR NOT NULL,
    seq  BIGINT NOT NULL
);
"""
"""``webhooks.events`` is a comma-separated subset of ``entered,exited``; ``secret``
is kept in clear because it signs every body (HMAC-SHA256); a destination receives
the changes logged after it was created (``seq > from_seq``).  A delivery's ``status``
is pending | delivered | dead; ``dead`` is the dead-letter list."""

PENDING: Final = "pending"
DELIVERED: Final = "delivered"
DEAD: Final = "dead"


@dataclass(frozen=True)
class Webhook:
    id: str
    segment_id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime
    from_seq: int = 0

    def to_dict(self, *, with_secret: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "segment_id": self.segment_id,
            "url": self.url,
            "events": list(self.events),
            "created_at": format_instant(self.created_at),
        }
        if with_secret:
            out["secret"] = self.secret
        return out


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: str
    change_seq: int
    body: bytes
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "webhook_id": self.webhook_id,
            "change_seq": self.change_seq,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": (
                format_instant(self.next_attempt_at) if self.next_attempt_at else None
            ),
            "last_error": self.last_error,
            "body": orjson.loads(self.body),
        }


_DELIVERY_COLS: Final = (
    "id, webhook_id, change_seq, body, status, attempts, next_attempt_at, last_error"
)


def change_body(change: LoggedChange, webhook_id: str, held_out: bool = False) -> bytes:
    """The JSON a destination receives for one membership change (``held_out``: the
    profile is in the segment's holdout, so the receiver leaves it out; a priority
    group's resolved member names ``group`` and ``group_segment``)."""
    return orjson.dumps(
        {
            "type": "segment.entered" if change.entered else "segment.exited",
            "webhook_id": webhook_id,
            "seq": change.seq,
            "segment_id": change.segment_id,
            "profile_id": change.profile_id,
            "at": format_instant(change.at),
            "reason": change.reason,
            "version": change.version,
            "held_out": held_out,
            **change.group_fields(),
        }
    )


class WebhookStore:
    """Destinations, the delivery outbox and its cursor on the server's connection
    (callers hold the server lock)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        silent: Callable[[], Collection[str]] = frozenset,
        holdouts: Callable[[], Mapping[str, Holdout]] = dict,
    ) -> None:
        self.con = con
        con.execute(DDL)
        self._active: list[Webhook] | None = None
        self.silent = silent
        """The segments whose changes get no delivery (``emit_events: false``)."""
        self.holdouts = holdouts
        """Each segment's holdout, which marks the deliveries of its held-out members."""

    def active(self) -> list[Webhook]:
        """Every destination, cached (this store is the only writer of the table)."""
        if self._active is None:
            self._active = self.hooks()
        return list(self._active)

    # -- destinations ----------------------------------------------------------
    def create(
        self,
        segment_id: str,
        url: str,
        events: Sequence[str],
        secret: str | None = None,
        from_seq: int = 0,
    ) -> Webhook:
        hook = Webhook(
            id="wh_" + secrets.token_hex(8),
            segment_id=segment_id,
            url=url,
            events=tuple(e for e in ("entered", "exited") if e in events),
            secret=secret or "whsec_" + secrets.token_urlsafe(24),
            created_at=utcnow(),
            from_seq=from_seq,
        )
        self.con.execute(
            "INSERT INTO webhooks (id, segment_id, url, events, secret, created_at, from_seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                hook.id,
                segment_id,
                url,
                ",".join(hook.events),
                hook.secret,
                hook.created_at,
                from_seq,
            ],
        )
        self._active = None
        return hook

    def hooks(self, segment_id: str | None = None) -> list[Webhook]:
        sql = (
            "SELECT id, segment_id, url, events, secret, created_at, from_seq FROM webhooks"
            " WHERE NOT deleted"
        )
        params: list[Any] = []
        if segment_id is not None:
            sql += " AND segment_id = ?"
            params.append(segment_id)
        rows = self.con.execute(sql + " ORDER BY created_at, id", params).fetchall()
        return [
            Webhook(str(i), str(s), str(u), tuple(e.split(",")) if e else (), str(k), t, int(f))
            for i, s, u, e, k, t, f in rows
        ]

    def get(self, webhook_id: str) -> Webhook:
        for hook in self.hooks():
            if hook.id == webhook_id:
                return hook
        raise KeyError(f"unknown webhook {webhook_id!r}")

    def delete(self, webhook_id: str) -> None:
        """Remove a destination; its pending deliveries go to the dead-letter list."""
        self.get(webhook_id)
        self.con.execute("UPDATE webhooks SET deleted = TRUE WHERE id = ?", [webhook_id])
        self.con.execute(
            "UPDATE webhook_deliveries SET status = 'dead', next_attempt_at = NULL,"
            " last_error = 'webhook deleted' WHERE webhook_id = ? AND status = 'pending'",
            [webhook_id],
        )
        self._active = None

    # -- outbox ----------------------------------------------------------------
    def cursor(self) -> int:
        row = self.con.execute("SELECT max(seq) FROM webhook_cursor").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def start_seq(self) -> int:
        """Where enqueueing resumes: the cursor, or past what no destination wants."""
        hooks = self.active()
        floor = min((h.from_seq for h in hooks), default=0)
        return max(self.cursor(), floor)

    def enqueue(self, changes: Iterable[LoggedChange]) -> int:
        """Pending deliveries for every change past the cursor that a destination wants;
        advances the cursor in the same transaction."""
        cursor = self.start_seq()
        items = [c for c in changes if c.seq > cursor]
        if not items:
            return 0
        hooks: dict[str, list[Webhook]] = {}
        for h in self.active():
            hooks.setdefault(h.segment_id, []).append(h)
        for sid in self.silent():
            hooks.pop(sid, None)
        now = utcnow()
        holdouts = self.holdouts()
        rows = [
            (
                h.id,
                c.seq,
                change_body(c, h.id, held_out(holdouts, c.segment_id, c.profile_id)).decode(),
                now,
            )
            for c in items
            for h in hooks.get(c.segment_id, ())
            if c.seq > h.from_seq and ("entered" if c.entered else "exited") in h.events
        ]
        self.con.execute("BEGIN TRANSACTION")
        try:
            if rows:
                self.con.executemany(
                    "INSERT INTO webhook_deliveries (id, webhook_id, change_seq, body, status,"
                    " attempts, next_attempt_at, created_at)"
                    " SELECT nextval('webhook_delivery_seq'), ?, ?, ?, 'pending', 0, ?, ?"
                    " WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries"
                    " WHERE webhook_id = ? AND change_seq = ?)",
                    [(w, s, b, t, t, w, s) for w, s, b, t in rows],
                )
            self.con.execute("DELETE FROM webhook_cursor")
            self.con.execute(
                "INSERT INTO webhook_cursor VALUES ('changes', ?)", [max(c.seq for c in items)]
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return len(rows)

    def due(
        self, now: datetime, limit: int = 50, exclude: Collection[str] = ()
    ) -> list[tuple[Delivery, Webhook]]:
        """Pending deliveries whose next attempt is due, oldest first, with their hook:
        at most ``limit`` per destination (so a backlog at one does not crowd out the
        others), none of the destinations in ``exclude`` (busy delivering)."""
        skip = sorted(exclude)
        rows = self.con.execute(
            f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries"
            " WHERE status = 'pending' AND next_attempt_at <= ?"
            " AND webhook_id NOT IN (SELECT unnest(?::VARCHAR[]))"
            " QUALIFY row_number() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at, id)"
            " <= ? ORDER BY next_attempt_at, id",
            [now, skip, limit],
        ).fetchall()
        if not rows:
            return []
        hooks = {h.id: h for h in self.active()}
        out = []
        for row in rows:
            d = _delivery(row)
            hook = hooks.get(d.webhook_id)
            if hook is None:
                self.con.execute(
                    "UPDATE webhook_deliveries SET status = 'dead', last_error = ? WHERE id = ?",
                    ["webhook deleted", d.id],
                )
                continue
            out.append((d, hook))
        return out

    def next_due(self, exclude: Collection[str] = ()) -> datetime | None:
        """When the next pending delivery of a destination not in ``exclude`` is due."""
        row = self.con.execute(
            "SELECT min(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'"
            " AND webhook_id NOT IN (SELECT unnest(?::VARCHAR[]))",
            [sorted(exclude)],
        ).fetchone()
        return row[0] if row and row[0] is not None else None

    def delivered(self, delivery_id: int, now: datetime) -> None:
        self.con.execute(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,"
            " delivered_at = ?, next_attempt_at = NULL, last_error = NULL WHERE id = ?",
            [now, delivery_id],
        )

    def failed(
        self, delivery: Delivery, error: str, now: datetime, backoff: timedelta, max_attempts: int
    ) -> None:
        """Schedule the next attempt ``backoff * 2**attempts`` later, or dead-letter it."""
        attempts = delivery.attempts + 1
        if attempts >= max_attempts:
            self.con.execute(
                "UPDATE webhook_deliveries SET status = 'dead', attempts = ?,"
                " next_attempt_at = NULL, last_error = ? WHERE id = ?",
                [attempts, error[:500], delivery.id],
            )
            return
        delay = backoff * (2 ** (attempts - 1))
        self.con.execute(
            "UPDATE webhook_deliveries SET attempts = ?, next_attempt_at = ?, last_error = ?"
            " WHERE id = ?",
            [attempts, now + delay, error[:500], delivery.id],
        )

    def deliveries(
        self, *, status: str | None = None, webhook_id: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        sql = f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE TRUE"
        params: list[Any] = []
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if webhook_id is not None:
            sql += " AND webhook_id = ?"
            params.append(webhook_id)
        params.append(limit)
        rows = self.con.execute(sql + " ORDER BY id LIMIT ?", params).fetchall()
        return [_delivery(r) for r in rows]

    def replay(self, ids: Sequence[int] | None = None, now: datetime | None = None) -> int:
        """Move dead deliveries (all, or the given ids) of existing destinations back to
        pending, due now."""
        now = now or utcnow()
        sql = (
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0,"
            " next_attempt_at = ? WHERE status = 'dead'"
            " AND webhook_id IN (SELECT id FROM webhooks WHERE NOT deleted)"
        )
        params: list[Any] = [now]
        if ids is not None:
            if not ids:
                return 0
            sql += f" AND id IN ({', '.join('?' for _ in ids)})"
            params.extend(ids)
        before = self.count(DEAD)
        self.con.execute(sql, params)
        return before - self.count(DEAD)

    def count(self, status: str) -> int:
        row = self.con.execute(
            "SELECT count(*) FROM webhook_deliveries WHERE status = ?", [status]
        ).fetchone()
        return int(row[0]) if row else 0


def _delivery(row: Sequence[Any]) -> Delivery:
    i, w, s, body, status, attempts, nxt, err = row
    raw = body.encode() if isinstance(body, str) else bytes(body)
    return Delivery(int(i), str(w), int(s), raw, str(status), int(attempts), nxt, err)
