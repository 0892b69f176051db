"""Helpers shared by the tests: profile histories loaded straight into the store schema,
the conformance suites' plan instants and live-ingestion harness, real servers over temp
DuckDB files, and a real HTTP receiver for webhooks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest

from segflow.api.deps import ServerContext, Settings
from segflow.batch import compile as compile_mod
from segflow.model.changes import LoggedChange
from segflow.model.definition import CALL_TYPES, Ago, Duration, EventFilter, Within
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.model.time import format_instant
from segflow.plan.features import EventAggregate, FAbandoned, FCompare, SequenceMatch
from segflow.plan.interpret import as_time
from segflow.plan.planner import Plan
from segflow.realtime import VirtualClock
from segflow.server import make_context, serve_in_thread
from segflow.service.handle import Segflow
from segflow.service.live import LiveEvaluator
from segflow.store.duckdb.batch import evaluate
from segflow.store.duckdb.numbers import number_profiles
from segflow.store.duckdb.schema import DDL
from segflow.traits.refresh import ScoresReport
from tests.strategies import START, US, Input, LiveScenario, Merge

# --------------------------------------------------------------------------- histories

FIELDS = {
    "properties.category": "VARCHAR",
    "properties.price": "DOUBLE",
    "properties.flag": "BOOLEAN",
    "context.device.type": "VARCHAR",
}


def _fits(kind: str, v: object) -> bool:
    if kind == "BOOLEAN":
        return isinstance(v, bool)
    if kind == "DOUBLE":
        return isinstance(v, int | float) and not isinstance(v, bool)
    return isinstance(v, str)


def _kind(v: object) -> tuple[str, float | None, str | None, bool | None, str | None]:
    if v is None:
        return ("null", None, None, None, None)
    if isinstance(v, bool):
        return ("bool", None, None, v, None)
    if isinstance(v, int | float):
        return ("number", float(v), None, None, None)
    if isinstance(v, str):
        return ("string", None, v, None, None)
    return ("json", None, None, None, orjson.dumps(v).decode())


def _infer(histories: list[ProfileHistory]) -> dict[str, str]:
    """Fixed test fields plus every other path typed by its first scalar value."""
    fields = dict(FIELDS)
    for h in histories:
        for e in h.events:
            for path, v in e.fields.items():
                if path not in fields and v is not None:
                    fields[path] = (
                        "BOOLEAN"
                        if isinstance(v, bool)
                        else "DOUBLE"
                        if isinstance(v, int | float)
                        else "VARCHAR"
                    )
    return fields


def _quoted(name: str) -> str:
    """A column name as a DuckDB identifier (a field path may hold any character)."""
    return '"' + name.replace('"', '""') + '"'


def load(
    con: duckdb.DuckDBPyConnection, histories: Iterable[ProfileHistory], *, numbered: bool = True
) -> None:
    """Store ``histories`` straight into the store schema as DuckDBStore would: with
    event codes and, unless not ``numbered`` (the compiler then keys on ``profile_id``),
    profile numbers.  It bypasses ingestion: its tests pin the evaluators, not the
    loader."""
    histories = list(histories)
    fields = _infer(histories)
    con.execute(DDL)
    for path, kind in fields.items():
        con.execute(f"ALTER TABLE events ADD COLUMN IF NOT EXISTS {_quoted(path)} {kind}")
    overflow: set[str] = set()
    seq = 0
    for h in histories:
        first = min((e.timestamp for e in h.events), default=None)
        con.execute(
            "INSERT INTO profiles (profile_id, first_seen, last_seen) VALUES (?, ?, ?)",
            [h.profile_id, first or "2020-01-01", first or "2020-01-01"],
        )
        for e in h.events:
            seq += 1
            extra: dict[str, dict[str, object]] = {}
            typed: list[object] = []
            for path, kind in fields.items():
                v = e.fields.get(path)
                if v is not None and not _fits(kind, v):
                    top, rest = path.split(".", 1)
                    node = extra.setdefault(top, {})
                    parts = rest.split(".")
                    for p in parts[:-1]:
                        node = node.setdefault(p, {})  # type: ignore[assignment]
                    node[parts[-1]] = v
                    overflow.add(path)
                    v = None
                typed.append(v)
            cols = ", ".join(_quoted(c) for c in fields)
            marks = ", ".join("?" for _ in fields)
            # page/screen calls as stored: their type and no event name
            type_ = CALL_TYPES.get(e.name, "track") if e.name is not None else "track"
            con.execute(
                "INSERT INTO events (message_id, seq, type, event, user_id, profile_id,"
                f' "timestamp", extra, {cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {marks})',
                [
                    e.message_id or f"m{seq}",
                    seq,
                    type_,
                    None if type_ != "track" else e.name,
                    h.profile_id,
                    h.profile_id,
                    e.timestamp,
                    orjson.dumps(extra).decode() if extra else None,
                    *typed,
                ],
            )
        for w in h.traits:
            con.execute(
                "INSERT INTO traits (profile_id, key, timestamp, message_id, kind, num, str,"
                " bool, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [h.profile_id, w.key, w.timestamp, w.message_id, *_kind(w.value)],
            )
        for sid in h.static_segments:
            con.execute(
                "INSERT INTO static_members (segment_id, profile_id) VALUES (?, ?)",
                [sid, h.profile_id],
            )
    for path, kind in fields.items():
        con.execute(
            "INSERT INTO field_catalog (path, type, overflow) VALUES (?, ?, ?)",
            [path, kind, path in overflow],
        )
    # the integer name codes the store keeps (DuckDBStore numbers names on insert)
    con.execute(
        "INSERT INTO event_names (name, code)"
        " SELECT name, row_number() OVER (ORDER BY name) AS code"
        " FROM (SELECT DISTINCT event AS name FROM events WHERE event IS NOT NULL)"
    )
    con.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS event_code INTEGER")
    con.execute("UPDATE events SET event_code = n.code FROM event_names n WHERE event = n.name")
    if numbered:
        number_profiles(con)


def assert_profile_numbers_hold(con: duckdb.DuckDBPyConnection) -> None:
    """Every profile has its own number, and every events/traits row carries its
    profile's (store.duckdb.numbers): a row with another number is invisible to the batch
    evaluator's joins, or counted for the wrong profile."""
    (profiles, numbers) = con.execute(
        "SELECT count(*), count(DISTINCT profile_no) FROM profiles"
    ).fetchone() or (0, 0)
    assert profiles == numbers, "two profiles share a number"
    for table in ("events", "traits"):
        wrong = con.execute(
            f"SELECT t.profile_id, t.profile_no, p.profile_no FROM {table} t"
            " LEFT JOIN profiles p USING (profile_id)"
            " WHERE p.profile_no IS DISTINCT FROM t.profile_no LIMIT 5"
        ).fetchall()
        assert not wrong, (table, wrong)


# --------------------------------------------------------------------------- conformance


def plan_durations(plan: Plan) -> set[int]:
    """Every duration of the plan (µs): windows, waits, time comparisons."""
    out = {0}

    def window(w: object) -> None:
        if isinstance(w, Within):
            out.add(w.span.us)
        elif isinstance(w, Ago):
            out.update((w.from_ago.us, w.to_ago.us))

    def filters(fs: Iterable[EventFilter]) -> None:
        for f in fs:
            for p in f.where:
                if isinstance(p.cmp.value, Duration):
                    out.add(p.cmp.value.us)

    for feat in plan.features.values():
        if isinstance(feat, EventAggregate):
            window(feat.window)
            filters([feat.filter])
        elif isinstance(feat, SequenceMatch):
            window(feat.window)
            filters(feat.steps)
    stack: list[Any] = list(plan.formulas.values())
    while stack:
        f = stack.pop()
        if isinstance(f, FCompare) and isinstance(f.cmp.value, Duration):
            out.add(f.cmp.value.us)
        elif isinstance(f, FAbandoned):
            out.add(f.wait.us)
        stack.extend(getattr(f, "items", ()))
        if hasattr(f, "item"):
            stack.append(f.item)
    return out


def flip_instants(h: ProfileHistory, durations: set[int]) -> set[datetime]:
    """Every instant at which the interpreter's answer for ``h`` could change."""
    bases: set[datetime] = set()
    for e in h.events:
        bases.add(e.timestamp)
        for v in e.fields.values():
            t = as_time(v)
            if t is not None:
                bases.add(t)
    for w in h.traits:
        t = as_time(w.value)
        if t is not None:
            bases.add(t)
    return {b + timedelta(microseconds=d) for b in bases for d in durations}


def _nest(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, v in fields.items():
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def messages(sc: LiveScenario, pid: str, item: Input) -> dict[str, Any]:
    who = {"anonymousId" if pid in sc.anonymous else "userId": pid}
    ts = format_instant(item.timestamp)
    if isinstance(item, Event) and item.name in CALL_TYPES:
        # a page/screen call: its name as the spec sends it (ingestion moves it into
        # properties), a name that is no string stays in properties
        fields = dict(item.fields)
        name = fields.get("properties.name")
        if isinstance(name, str):
            del fields["properties.name"]
        return {
            "type": CALL_TYPES[item.name],
            **({"name": name} if isinstance(name, str) else {}),
            **who,
            "timestamp": ts,
            "messageId": item.message_id,
            **_nest(fields),
        }
    if isinstance(item, Event):
        return {
            "type": "track",
            "event": item.name,
            **who,
            "timestamp": ts,
            "messageId": item.message_id,
            **_nest(dict(item.fields)),
        }
    return {
        "type": "identify",
        **who,
        "timestamp": ts,
        "messageId": item.message_id,
        "traits": {item.key: item.value},
    }


def trait_row(pid: str, w: TraitWrite) -> list[Any]:
    """A ``traits`` row of no event: (profile, key, timestamp, message id, kind, num, str,
    bool)."""
    v = w.value
    if v is None:
        return [pid, w.key, w.timestamp, w.message_id, "null", None, None, None]
    if isinstance(v, bool):
        return [pid, w.key, w.timestamp, w.message_id, "bool", None, None, v]
    if isinstance(v, int | float):
        return [pid, w.key, w.timestamp, w.message_id, "number", float(v), None, None]
    return [pid, w.key, w.timestamp, w.message_id, "string", None, str(v), None]


def merge_message(m: Merge) -> dict[str, Any]:
    ts = format_instant(m.timestamp)
    if m.kind == "identify":
        return {
            "type": "identify",
            "userId": m.target,
            "anonymousId": m.source,
            "timestamp": ts,
            "messageId": m.message_id,
        }
    return {
        "type": "alias",
        "userId": m.target,
        "previousId": m.source,
        "timestamp": ts,
        "messageId": m.message_id,
    }


class Run:
    """Ingests a scenario commit by commit into a DuckDB file, driving a LiveEvaluator."""

    def __init__(self, sc: LiveScenario, path: Path) -> None:
        self.sc = sc
        self.app = Segflow(path)
        own = [s for s in sc.segments if s.group is None]
        self.app.registry.save([s for s in own if s.id != "picked"])
        if sc.group is not None:
            self.app.registry.save_groups([sc.group])
            self.app.registry.save([s for s in own if s.id == "picked"])
        vip = [p for p, s in sc.statics.items() if "vip" in s]
        self.app.registry.set_static_members("vip", vip)
        self.clock = VirtualClock(START)
        self.live = LiveEvaluator(self.app, self.clock)
        self.segments = self.app.registry.current()
        self.log: list[LoggedChange] = []

    def close(self) -> None:
        self.app.close()

    def batches(self) -> Iterator[tuple[datetime, list[dict[str, Any]], list[list[Any]]]]:
        """Per commit: the messages it ingests and the trait rows of no event it writes."""
        sc = self.sc
        pending: list[tuple[datetime, int, dict[str, Any]]] = []
        alone: list[tuple[datetime, str, TraitWrite]] = []
        for pid, items in sc.own.items():
            for a, i in items:
                if isinstance(i, TraitWrite) and i.message_id in sc.standalone:
                    alone.append((a, pid, i))
                else:
                    pending.append((a, 1, messages(sc, pid, i)))
        for a, m in sc.merges:
            pending.append((a, 0, merge_message(m)))
        alone.sort(key=lambda x: (x[0], x[2].message_id))
        merged_at = {m.source: next(c for c in sc.commits if c >= a) for a, m in sc.merges}
        exists: set[str] = set()
        for c in sc.commits:
            now = [(k, msg) for a, k, msg in pending if a <= c]
            pending = [p for p in pending if p[0] > c]
            for _k, msg in now:
                exists.add(str(msg.get("userId") or msg["anonymousId"]))
            rows: list[list[Any]] = []
            for _a, pid, w in [x for x in alone if x[0] <= c]:
                if pid in exists and merged_at.get(pid, c + US) > c:
                    rows.append(trait_row(pid, w))
                else:  # no profile to write to yet, or merged away: an identify call
                    now.append((1, messages(sc, pid, w)))
                    exists.add(pid)
            alone = [x for x in alone if x[0] > c]
            yield c, [msg for _k, msg in now], rows

    def ingest(self, msgs: list[dict[str, Any]]) -> None:
        """Store one commit's messages (a hook: ``test_live_fast`` stores them as the
        HTTP API does)."""
        self.app.store.ingest_messages(msgs)

    def catch_up(self) -> list[LoggedChange]:
        """Let the live evaluator catch up after a commit (a hook, as ``ingest``)."""
        return self.live.catch_up()

    def run(self, *, sql_checks: bool = True) -> None:
        started = False
        timeline: list[tuple[datetime, int, list[dict[str, Any]], list[list[Any]]]] = [
            (c, 0, msgs, rows) for c, msgs, rows in self.batches()
        ]
        timeline += [(t, 1, [], []) for t in self.sc.checkpoints]
        timeline.sort(key=lambda x: (x[0], x[1]))
        for t, kind, msgs, rows in timeline:
            self.clock.set(t)
            if kind == 0:
                if msgs:
                    self.ingest(msgs)
                if rows:
                    self.app.store.con.executemany(
                        'INSERT INTO traits (profile_id, profile_no, key, "timestamp",'
                        " message_id, kind, num, str, bool) SELECT $1, (SELECT profile_no"
                        " FROM profiles WHERE profile_id = $1), $2, $3, $4, $5, $6, $7, $8",
                        rows,
                    )
                if not started:
                    self.log += self.live.start()
                    self.start = t
                    started = True
                else:
                    self.log += self.catch_up()
            elif started:
                self.log += self.live.tick()
                if sql_checks:
                    self.check_sql(t)

    def check_sql(self, t: datetime) -> None:
        res = evaluate(self.app.store.con, self.segments.values(), t)
        members = {sid: set(res.members(sid)) for sid in self.segments}
        for sid in self.segments:
            live = set(self.live.members(sid))
            assert live == members[sid], (sid, t, live - members[sid], members[sid] - live)
        for pid in self.app.store.profile_ids():
            expected = {sid for sid, ms in members.items() if pid in ms}
            assert set(self.live.segments_of(pid)) == expected, (pid, t)


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    base_url: str
    admin_key: str
    write_key: str
    ctx: ServerContext
    db: Path
    client: httpx.Client
    """Authenticated with the admin key."""
    edge: bool = False

    def ingest(self, path: str, body: object) -> httpx.Response:
        """POST to an ingestion endpoint with the write key (basic auth)."""
        return httpx.post(self.base_url + path, json=body, auth=(self.write_key, ""), timeout=30)


def create_keys(ctx: ServerContext) -> tuple[str, str]:
    with ctx.lock:
        admin = ctx.key_store.create("admin", "test admin").token
        write = ctx.key_store.create("write", "test write").token
    return admin, write


SERVER_KINDS = [
    pytest.param(False, id="one-process"),
    pytest.param(True, id="edge", marks=pytest.mark.slow),
]
"""One process, or behind an edge process (slow: an edge process per server)."""
EDGE = pytest.mark.parametrize("server", SERVER_KINDS, indirect=True)
"""Run a test twice: against the one-process server and behind an edge process."""
SHARED_EDGE = pytest.mark.parametrize("shared_server", SERVER_KINDS, indirect=True)
"""``EDGE`` for ``shared_server``: one server of each kind per module."""


@contextmanager
def running_server(db: Path, *, edge: bool = False) -> Iterator[Server]:
    """A real server (thread) over ``db`` with an admin and a write key."""
    ctx = make_context(db, settings=Settings(schedule_interval_seconds=3600))
    admin, write = create_keys(ctx)
    with (
        serve_in_thread(ctx, edge=edge) as running,
        httpx.Client(
            base_url=running.base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
        ) as client,
    ):
        yield Server(running.base_url, admin, write, ctx, db, client, edge)


def now_iso() -> str:
    """Now as the API writes instants (UTC, ``Z``)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def post_view(server: Server, user: str, n: int) -> None:
    """``user`` views a product now (message id ``view-{user}-{n}``)."""
    msg = {
        "type": "track",
        "userId": user,
        "event": "Product Viewed",
        "messageId": f"view-{user}-{n}",
        "timestamp": now_iso(),
    }
    assert server.ingest("/v1/track", msg).status_code == 200


def create_viewers(server: Server, sid: str = "viewers") -> None:
    """Segment ``sid``: profiles that viewed a product in the last 7 days."""
    r = server.client.post(
        "/v1/segments",
        json={"id": sid, "condition": {"event": "Product Viewed", "within": "7d"}},
    )
    assert r.status_code == 201, r.text


def wait_for(cond: Callable[[], object], timeout: float = 20) -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


# --------------------------------------------------------------------------- webhooks


class Receiver:
    """A real HTTP destination: fails the first ``fail_first`` requests (or all while
    ``down``), records the rest."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.down = False
        self.seen: list[tuple[bytes, dict[str, str]]] = []
        self.accepted: list[tuple[bytes, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k: v for k, v in self.headers.items()}
                outer.seen.append((body, headers))
                failing = outer.down or len(outer.seen) <= outer.fail_first
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if not failing:
                    outer.accepted.append((body, headers))

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


# --------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class ScoredShop:
    """A generated shop ingested by the real store and scored (``scored_shop``)."""

    db: Path
    report: ScoresReport


@contextmanager
def shared_scans(most: int | None) -> Iterator[None]:
    """Compile with at most ``most`` scans of each kind (None: the default), as a plan
    over more event-name sets, traits or sequences than the limits shares them."""
    names = ("MAX_EVENT_SCANS", "MAX_TRAIT_SCANS", "MAX_SEQUENCE_SCANS")
    limits = {n: getattr(compile_mod, n) for n in names}
    for n in names:
        setattr(compile_mod, n, most or limits[n])
    try:
        yield
    finally:
        for n, v in limits.items():
            setattr(compile_mod, n, v)
