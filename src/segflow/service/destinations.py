"""Destinations: where membership changes and full syncs of segments go.

``parse_destination`` checks a destination's configuration (every problem at once,
each with its path).  ``DestinationWorker`` runs the outbox: a dispatcher thread
turns new change-log rows into deliveries (``store.duckdb.destinations``), requests
the syncs whose cron schedule fired, and hands each idle destination its due work on
a thread of its own: its deliveries, ``batch_size`` at a time, then a requested sync.
Destinations never wait on each other: a dead one holds only its own thread (until
its timeout), and when it cannot be reached the rest of its due batches are
rescheduled after one try.  A batch not accepted is retried ``backoff * 2**n`` later
until ``max_attempts``, then dead-lettered (replay brings it back).

Every record carries an idempotency key, ``segment:profile:seq`` for a change and
``segment:profile:sync-<id>`` for a sync's member, the same on every re-send, so
delivery is at least once and receivers (or the destination, see ``service.sinks``)
drop repeats.  Held-out members of a segment's holdout are never sent (the webhook
API's destinations mark them instead, as that API always has).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from segflow.model import schedule
from segflow.model.audiences import PLATFORMS, is_region
from segflow.model.changes import LoggedChange
from segflow.model.consent import CHANNELS, UNKNOWN_POLICIES, decide
from segflow.model.errors import Problem
from segflow.model.groups import group_fields
from segflow.model.time import format_instant, utcnow
from segflow.service.delivery import STOP_GRACE_S, DeliverySettings
from segflow.service.handle import Segflow
from segflow.service.sinks import (
    ESP_PROVIDERS,
    FILE_FORMATS,
    KAFKA_MECHANISMS,
    KAFKA_PROTOCOLS,
    AudienceSink,
    FileSink,
    Record,
    Sink,
    SinkError,
    make_sink,
)
from segflow.store.duckdb.destinations import DestinationStore
from segflow.store.records.destinations import (
    CREDENTIALS,
    DEAD,
    KINDS,
    Delivery,
    Destination,
    Sync,
    idempotency_key,
)

ChangesAfter = Callable[[int], Sequence[LoggedChange]]
Members = Callable[[str], list[str]]
GroupMembers = Callable[[str], Sequence[str]]
MAX_BATCH: Final = 10_000
RECORD_EVERY: Final = 20
"""Accepted deliveries recorded in one statement (a webhook sends one per request)."""
SYNC_CHUNK: Final = 5000
"""Members whose traits are read (under the store lock) per step of a stream sync."""


class InvalidDestination(ValueError):
    """A destination configuration with problems, each naming its path."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


_COMMON: Final = {
    "name",
    "type",
    "segments",
    "groups",
    "events",
    "changes",
    "fields",
    "batch_size",
    "schedule",
    "channel",
    "unknown_consent",
    "config",
}


@dataclass(frozen=True)
class Setting:
    """One setting of a destination type's ``config``, as a form shows it: ``input``
    is text, url, secret, path, integer or choice (one of ``choices``)."""

    name: str
    required: bool
    input: str
    description: str
    choices: tuple[str, ...] = ()
    default: str | int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "required": self.required,
            "input": self.input,
            "description": self.description,
            "choices": list(self.choices),
            "default": self.default,
        }


SETTINGS: Final[dict[str, tuple[Setting, ...]]] = {
    "webhook": (
        Setting("url", True, "url", "where records are POSTed (http or https)"),
        Setting("secret", False, "secret", "16-256 characters; generated when left empty"),
    ),
    "redis": (
        Setting("url", False, "url", "the Redis server", default="redis://127.0.0.1:6379/0"),
        Setting("stream", True, "text", "the stream records are added to"),
        Setting("maxlen", False, "integer", "trim the stream to about this many (0: never)"),
        Setting("dedupe_ttl_s", False, "integer", "seconds a sent key is remembered"),
    ),
    "nats": (
        Setting("url", False, "url", "the NATS server", default="nats://127.0.0.1:4222"),
        Setting("subject", True, "text", "the subject, without wildcards"),
        Setting("stream", False, "text", "the JetStream stream", default="SEGFLOW"),
    ),
    "kafka": (
        Setting("bootstrap_servers", True, "text", "the brokers, host:port[,host:port...]"),
        Setting("topic", True, "text", "the topic records are produced to"),
        Setting(
            "security_protocol", False, "choice", "how to connect", KAFKA_PROTOCOLS, "PLAINTEXT"
        ),
        Setting("sasl_mechanism", False, "choice", "SASL mechanism", KAFKA_MECHANISMS),
        Setting("sasl_username", False, "text", "SASL user name"),
        Setting("sasl_password", False, "secret", "SASL password"),
    ),
    "files": (
        Setting("path", True, "path", "an absolute directory on the server"),
        Setting("format", False, "choice", "the file format", FILE_FORMATS, "jsonl"),
    ),
    "ad_audience": (
        Setting("path", True, "path", "an absolute directory on the server"),
        Setting("platform", True, "choice", "the ad platform", tuple(PLATFORMS)),
        Setting("email_trait", False, "text", "the trait holding the email", default="email"),
        Setting("phone_trait", False, "text", "the trait holding the phone", default="phone"),
        Setting("default_region", False, "text", "region of phones without a country code"),
    ),
    "esp": (
        Setting("provider", True, "choice", "the email service", tuple(ESP_PROVIDERS)),
        Setting("list_id", True, "text", "the provider's list (audience) id"),
        Setting("api_key", True, "secret", "the provider's API key (never shown back)"),
        Setting("base_url", False, "url", "the provider's API address (for a proxy)"),
        Setting("email_trait", False, "text", "the trait holding the email", default="email"),
    ),
}
"""Each type's settings, in the order a form lists them."""
_CONFIG: Final = {k: {s.name: s.required for s in v} for k, v in SETTINGS.items()}
"""Each type's settings: whether each is required."""


def destination_types() -> dict[str, Any]:
    """What a destination may be configured with: each type's settings, the consent
    channels and policies (the settings page builds its forms from this)."""
    return {
        "types": [{"type": k, "settings": [s.to_dict() for s in SETTINGS[k]]} for k in KINDS],
        "channels": list(CHANNELS),
        "unknown_consent": list(UNKNOWN_POLICIES),
        "events": ["entered", "exited"],
    }


def parse_destination(
    body: Mapping[str, Any], segments: Sequence[str], groups: Sequence[str] = ()
) -> Destination:
    """A destination from its JSON configuration (``segments``: the saved segment ids,
    ``groups``: the saved priority group ids); raises InvalidDestination listing every
    problem."""
    problems: list[Problem] = []

    def bad(path: str, message: str) -> None:
        problems.append(Problem(path, message))

    if not isinstance(body, Mapping):
        raise InvalidDestination([Problem("", "a destination is a JSON object")])
    for k in body:
        if k not in _COMMON:
            bad(str(k), f"unknown key (allowed: {', '.join(sorted(_COMMON))})")
    kind = body.get("type")
    if kind not in KINDS:
        bad("type", f"must be one of {', '.join(KINDS)}")
    grps = body.get("groups", [])
    grps_ok = isinstance(grps, list) and all(isinstance(g, str) for g in grps)
    if not grps_ok:
        bad("groups", "a list of priority group ids")
        grps = []
    for i, g in enumerate(grps):
        if g not in groups:
            near = [x for x in groups if x.lower() == g.lower()]
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            bad(f"groups[{i}]", f"unknown group {g!r}{hint}")
    segs = body.get("segments", [])
    if not isinstance(segs, list) or not all(isinstance(s, str) for s in segs):
        bad("segments", "a list of segment ids")
        segs = []
    elif not segs and not grps and grps_ok:
        bad("segments", "a non-empty list of segment ids (or give groups)")
    for i, s in enumerate(segs):
        if s not in segments:
            bad(f"segments[{i}]", f"unknown segment {s!r}")
    events = body.get("events", ["entered", "exited"])
    if not isinstance(events, list) or not all(e in ("entered", "exited") for e in events):
        bad("events", "a list of 'entered' and 'exited'")
        events = []
    changes = body.get("changes", True)
    if not isinstance(changes, bool):
        bad("changes", "true or false")
    fields: list[tuple[str, str]] = []
    raw_fields = body.get("fields", {})
    if isinstance(raw_fields, list) and all(isinstance(f, str) for f in raw_fields):
        fields = [(f, f) for f in raw_fields]
    elif isinstance(raw_fields, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in raw_fields.items()
    ):
        fields = [(str(k), str(v)) for k, v in raw_fields.items()]
    else:
        bad("fields", "a list of trait keys, or an object mapping trait keys to output names")
    outs = [o for _, o in fields]
    for o in {o for o in outs if outs.count(o) > 1}:
        bad("fields", f"output name {o!r} is used twice")
    for o in outs:
        if o in ("segment_id", "profile_id"):
            bad("fields", f"output name {o!r} is taken by the record itself")
    if kind == "ad_audience" and isinstance(config := body.get("config"), Mapping):
        if body.get("fields"):
            bad("fields", "not set for ad_audience: config.email_trait and phone_trait are sent")
        email_trait = config.get("email_trait") or "email"
        phone_trait = config.get("phone_trait") or "phone"
        if isinstance(email_trait, str) and isinstance(phone_trait, str):
            fields = [(email_trait, "email"), (phone_trait, "phone")]
    if kind == "esp" and isinstance(config := body.get("config"), Mapping):
        if body.get("fields"):
            bad("fields", "not set for esp: config.email_trait is sent")
        email_trait = config.get("email_trait") or "email"
        if isinstance(email_trait, str):
            fields = [(email_trait, "email")]
    default_batch = 1 if kind == "webhook" else 100
    batch = body.get("batch_size", default_batch)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH:
        bad("batch_size", f"an integer from 1 to {MAX_BATCH}")
        batch = default_batch
    cron = body.get("schedule")
    if cron is not None and (not isinstance(cron, str) or not schedule.is_valid(cron)):
        bad("schedule", "a cron expression (minute hour day month weekday, UTC), or null")
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        bad("name", "a text of at most 200 characters")
        name = ""
    channel = body.get("channel", "email" if kind == "esp" else None)
    if channel is not None and channel not in CHANNELS:
        bad("channel", f"one of {', '.join(CHANNELS)}, or null (no consent check)")
    unknown = body.get("unknown_consent")
    if unknown is not None and unknown not in UNKNOWN_POLICIES:
        bad("unknown_consent", "deny or allow, or null (the server's configured rule)")
    config = body.get("config", {})
    if not isinstance(config, Mapping):
        bad("config", "an object of the type's settings")
        config = {}
    if kind in _CONFIG:
        problems.extend(_check_config(str(kind), config))
    if problems:
        raise InvalidDestination(problems)
    return Destination(
        id="",
        name=name,
        kind=str(kind),
        segments=tuple(dict.fromkeys(segs)),
        groups=tuple(dict.fromkeys(grps)),
        config=dict(config),
        events=tuple(e for e in ("entered", "exited") if e in events),
        changes=bool(changes),
        fields=tuple(fields),
        batch_size=int(batch),
        schedule=cron,
        channel=channel,
        unknown_consent=None if unknown is None else str(unknown),
    )


def _check_config(kind: str, config: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    allowed = _CONFIG[kind]
    for k in config:
        if k not in allowed:
            out.append(Problem(f"config.{k}", f"unknown setting for {kind}"))
    for k, required in allowed.items():
        if required and not config.get(k):
            out.append(Problem(f"config.{k}", f"required for {kind}"))
    for k in ("url", "stream", "subject", "path", "secret", "format", "platform",
              "email_trait", "phone_trait", "default_region", "provider",
              "list_id", "api_key", "base_url", "bootstrap_servers", "topic",
              "security_protocol", "sasl_mechanism", "sasl_username",
              "sasl_password"):  # fmt: skip
        if k in config and not isinstance(config[k], str):
            out.append(Problem(f"config.{k}", "a text"))
    for k in ("maxlen", "dedupe_ttl_s"):
        v = config.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            out.append(Problem(f"config.{k}", "a whole number, 0 or more"))
    if out:
        return out
    url = config.get("url")
    schemes = {"webhook": ("http", "https"), "redis": ("redis", "rediss"), "nats": ("nats", "tls")}
    if url is not None and kind in schemes and urlsplit(url).scheme not in schemes[kind]:
        out.append(Problem("config.url", f"a {' or '.join(schemes[kind])} URL"))
    secret = config.get("secret")
    if secret is not None and not 16 <= len(secret) <= 256:
        out.append(Problem("config.secret", "16 to 256 characters"))
    if kind == "ad_audience":
        if config["platform"] not in PLATFORMS:
            out.append(Problem("config.platform", f"one of {', '.join(PLATFORMS)}"))
        region = config.get("default_region")
        if region is not None and not is_region(region):
            out.append(Problem("config.default_region", "a region code such as US or GB"))
        if config.get("email_trait") == config.get("phone_trait") is not None:
            out.append(Problem("config.phone_trait", "a trait other than email_trait"))
    if kind == "esp":
        if config["provider"] not in ESP_PROVIDERS:
            out.append(Problem("config.provider", f"one of {', '.join(ESP_PROVIDERS)}"))
        base = config.get("base_url")
        if base is not None and urlsplit(base).scheme not in ("http", "https"):
            out.append(Problem("config.base_url", "an http or https URL"))
    if kind in ("files", "ad_audience"):
        if not Path(config["path"]).is_absolute():
            out.append(Problem("config.path", "an absolute directory path"))
        fmt = config.get("format", "jsonl")
        if fmt not in FILE_FORMATS:
            out.append(Problem("config.format", f"one of {', '.join(FILE_FORMATS)}"))
    if kind == "nats" and any(c in config["subject"] for c in " \t*>"):
        out.append(Problem("config.subject", "a subject without spaces or wildcards"))
    if kind == "kafka":
        out += _check_kafka(config)
    return out


_KAFKA_TOPIC: Final = re.compile(r"[A-Za-z0-9._-]{1,249}")
_BROKER: Final = re.compile(r"[A-Za-z0-9.-]+:[0-9]{1,5}|\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}")


def _check_kafka(config: Mapping[str, Any]) -> list[Problem]:
    """Kafka's own rules for a topic name, ``host:port`` brokers, known security
    settings (a SASL mechanism needs a SASL protocol, a user name and a password)."""
    out: list[Problem] = []
    topic = config["topic"]
    if not _KAFKA_TOPIC.fullmatch(topic) or topic in (".", ".."):
        out.append(Problem("config.topic", "1 to 249 of letters, digits, '.', '_' or '-'"))
    for i, broker in enumerate(config["bootstrap_servers"].split(",")):
        if not _BROKER.fullmatch(broker.strip()):
            out.append(
                Problem(f"config.bootstrap_servers[{i}]", f"{broker.strip()!r} is not host:port")
            )
    protocol = config.get("security_protocol", "PLAINTEXT")
    if protocol not in KAFKA_PROTOCOLS:
        out.append(Problem("config.security_protocol", f"one of {', '.join(KAFKA_PROTOCOLS)}"))
    mechanism = config.get("sasl_mechanism")
    if mechanism is not None and mechanism not in KAFKA_MECHANISMS:
        out.append(Problem("config.sasl_mechanism", f"one of {', '.join(KAFKA_MECHANISMS)}"))
    if str(protocol).startswith("SASL_"):
        for k in ("sasl_mechanism", "sasl_username", "sasl_password"):
            if not config.get(k):
                out.append(Problem(f"config.{k}", f"required with security_protocol {protocol}"))
    elif any(config.get(k) for k in ("sasl_mechanism", "sasl_username", "sasl_password")):
        out.append(Problem("config.security_protocol", "SASL_SSL or SASL_PLAINTEXT with sasl_*"))
    return out


def sync_record(
    dest: Destination, sync: Sync, segment_id: str, profile_id: str, traits: dict[str, Any]
) -> Record:
    """One member of a full sync as a destination receives it."""
    key = idempotency_key(segment_id, profile_id, f"sync-{sync.id}")
    rec: dict[str, Any] = {
        "type": "segment.member",
        "idempotency_key": key,
        "destination_id": dest.id,
        "sync_id": sync.id,
        "segment_id": segment_id,
        **group_fields(segment_id),
        "profile_id": profile_id,
        "at": format_instant(sync.started_at or sync.requested_at),
    }
    if dest.fields:
        rec["traits"] = traits
    return Record(f"sync-{sync.id}", key, orjson.dumps(rec))


@dataclass
class Work:
    """One destination's turn: its due deliveries, then a requested sync."""

    dest: Destination
    deliveries: list[Delivery]
    sync: Sync | None


class DestinationWorker:
    """The dispatcher thread and one thread per busy destination; ``wake()`` after new
    changes are logged."""

    def __init__(
        self,
        store: DestinationStore,
        lock: threading.RLock,
        changes_after: ChangesAfter | None,
        settings: DeliverySettings | None = None,
        members: Members | None = None,
        sinks: Callable[[Destination, DeliverySettings], Sink] = make_sink,
        group_members: GroupMembers | None = None,
    ) -> None:
        self.store = store
        self.lock = lock
        self.changes_after = changes_after
        self.settings = settings or DeliverySettings()
        self.members = members
        """A saved segment's members now (called under the lock); None: no syncs."""
        self.make_sink = sinks
        self.group_members = group_members
        """A saved group's resolved member ids in priority order (called under the
        lock; KeyError for an unknown group); None: groups are not synced."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._busy: dict[str, threading.Thread] = {}
        self._sinks: dict[str, Sink] = {}
        self._specs: dict[str, bytes] = {}

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        with self.lock:
            self.store.resume_syncs()
        self._thread = threading.Thread(target=self._run, name="segflow-destinations", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop dispatching; work in flight gets a short grace (a batch not recorded
        by then is pending still and is sent again after a restart)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        deadline = time.monotonic() + min(self.settings.timeout_s, STOP_GRACE_S)
        with self._guard:
            running = list(self._busy.values())
        for t in running:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._guard:
            sinks, self._sinks = list(self._sinks.values()), {}
        for sink in sinks:
            with contextlib.suppress(Exception):  # a broken connection: nothing to flush
                sink.close()

    def wake(self) -> None:
        self._wake.set()

    def busy(self) -> set[str]:
        """Destinations with work in flight."""
        with self._guard:
            return set(self._busy)

    def catch_up(self) -> None:
        """Enqueue every change logged so far, reading the mapped traits now (a privacy
        delete calls it before the traits go, so its exits still carry them)."""
        if self.changes_after is None:
            return
        with self.lock:
            while True:
                start = self.store.start_seq()
                changes = self.changes_after(start)
                if not changes:
                    return
                self.store.enqueue(changes)

    # -- dispatching ----------------------------------------------------------------
    def collect(self, now: datetime | None = None) -> list[Work]:
        """Enqueue new changes, request the syncs whose schedule fired, and gather each
        idle destination's due work (under the lock)."""
        now = now or utcnow()
        busy = self.busy()
        with self.lock:
            active = self.store.active()
            if not active:
                return []
            if self.changes_after is not None:
                self.store.enqueue(self.changes_after(self.store.start_seq()))
            for d in active:
                if d.schedule and d.id not in busy:
                    last = self.store.last_sync_request(d.id, "schedule") or d.created_at
                    if schedule.fired_between(d.schedule, last, now):
                        self.store.request_sync(d.id, "schedule", now)
            due = self.store.due(now, exclude=busy)
            syncs = self.store.requested_syncs(exclude=busy) if self.members else {}
        by_id = {d.id: d for d in active}
        return [
            Work(by_id[i], due.get(i, []), syncs.get(i))
            for i in sorted(set(due) | set(syncs))
            if i in by_id
        ]

    def run_once(self, now: datetime | None = None) -> int:
        """Hand every idle destination its due work, each on its own thread; returns
        how many deliveries and syncs were handed out."""
        work = self.collect(now)
        for w in work:
            t = threading.Thread(
                target=self._work, args=(w,), name=f"segflow-dest-{w.dest.id}", daemon=True
            )
            with self._guard:
                self._busy[w.dest.id] = t
            t.start()
        return sum(len(w.deliveries) + (w.sync is not None) for w in work)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                made = self.run_once()
            except Exception:  # keep delivering after a transient store error
                made = 0
            if made:
                continue
            busy = self.busy()
            try:
                with self.lock:
                    nxt = self.store.next_due(exclude=busy)
            except Exception:
                nxt = None
            wait = self.settings.poll_s
            if nxt is not None:
                wait = max(0.0, min(wait, (nxt - utcnow()).total_seconds()))
            self._wake.wait(wait)
            self._wake.clear()

    # -- one destination's work -------------------------------------------------------
    def _sink(self, dest: Destination) -> Sink:
        """The destination's sink, made again when its configuration changed."""
        spec = orjson.dumps([dest.kind, dest.spec()])
        with self._guard:
            old = self._sinks.get(dest.id)
            if old is not None and self._specs.get(dest.id) == spec:
                return old
            sink = self._sinks[dest.id] = self.make_sink(dest, self.settings)
            self._specs[dest.id] = spec
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()
        return sink

    def _work(self, work: Work) -> None:
        try:
            self.deliver(work.dest, work.deliveries)
            if work.sync is not None and not self._stop.is_set():
                self.run_sync(work.dest, work.sync)
        except Exception:  # the store closed under a stopping server: still pending
            pass
        finally:
            with self._guard:
                self._busy.pop(work.dest.id, None)
            self._wake.set()

    def deliver(self, dest: Destination, deliveries: Sequence[Delivery]) -> None:
        """Send ``deliveries`` in order, ``batch_size`` at a time; when the destination
        cannot be reached, the rest are rescheduled with that error untried.  Accepted
        batches are recorded a few at a time (``RECORD_EVERY`` deliveries, and before
        any failure is): a crash in between re-sends at most those."""
        unreachable: str | None = None
        accepted: list[int] = []

        def record() -> None:
            if accepted:
                with self.lock:
                    self.store.delivered(accepted, utcnow())
                accepted.clear()

        size = dest.batch_size
        try:
            for start in range(0, len(deliveries), size):
                if self._stop.is_set():
                    return
                batch = deliveries[start : start + size]
                error = unreachable
                if error is None:
                    try:
                        self._sink(dest).send(
                            [Record(str(d.id), d.idempotency_key, d.body) for d in batch]
                        )
                    except SinkError as e:
                        error = str(e)
                        if e.unreachable:
                            unreachable = f"{error} (not tried: destination unreachable)"
                    except Exception as e:  # a sink's own failure counts as a failed attempt
                        error = f"{type(e).__name__}: {e}"
                if error is None:
                    accepted.extend(d.id for d in batch)
                    if len(accepted) >= RECORD_EVERY:
                        record()
                    continue
                record()
                with self.lock:
                    self.store.failed(
                        batch,
                        error,
                        utcnow(),
                        self.settings.backoff,
                        self.settings.max_attempts,
                    )
        finally:
            record()

    def run_sync(self, dest: Destination, sync: Sync) -> Sync:
        """Send every member (not held out) of each of ``dest``'s segments, with the
        mapped traits; the counts and any error go to the sync's log row."""
        assert self.members is not None
        now = utcnow()
        with self.lock:
            self.store.start_sync(sync.id, now)
            holdouts = self.store.holdouts()
        sync = replace(sync, started_at=now, status="running")
        sink = self._sink(dest)
        total = held_total = sent = 0
        detail: list[dict[str, Any]] = []
        error: str | None = None
        try:
            with self.lock:
                subscribed = self.subscribed(dest)
            for sid in subscribed:
                with self.lock:
                    members = self.members(sid)
                ho = holdouts.get(sid)
                held = ho.held_out(members) if ho is not None else set()
                kept = [m for m in members if m not in held] if held else members
                with self.lock:
                    reachable = self.store.reachable(dest, kept)
                unreachable = len(kept) - len(reachable)
                kept = reachable
                total += len(members)
                held_total += len(held)
                if isinstance(sink, AudienceSink):
                    traits: list[dict[str, Any]] = []
                    for start in range(0, len(kept), SYNC_CHUNK):
                        with self.lock:
                            chunk = self.store.member_traits(
                                kept[start : start + SYNC_CHUNK], dest.fields
                            )
                        traits.extend(t for _, t in chunk)
                    entry = sink.write_audience(sync.id, sid, traits)
                    sent += int(entry["rows"])
                    detail.append(
                        {"segment_id": sid, **group_fields(sid), "members": len(members),
                         "not_consented": unreachable, "skipped": entry["skipped"],
                         "file": entry}
                    )  # fmt: skip
                    continue
                if isinstance(sink, FileSink):
                    fmt = sink.format

                    def write(
                        path: Path, sid: str = sid, kept: list[str] = kept, fmt: str = fmt
                    ) -> int:
                        with self.lock:
                            return self.store.write_members(sid, kept, dest.fields, path, fmt)

                    entry = sink.write_sync(sync.id, sid, write)
                    sent += int(entry["rows"])
                    detail.append(
                        {"segment_id": sid, **group_fields(sid), "members": len(members),
                         "not_consented": unreachable, "file": entry}
                    )  # fmt: skip
                    continue
                n = 0
                for start in range(0, len(kept), SYNC_CHUNK):
                    if self._stop.is_set():
                        raise SinkError("stopped")
                    with self.lock:
                        rows = self.store.member_traits(
                            kept[start : start + SYNC_CHUNK], dest.fields
                        )
                    records = [sync_record(dest, sync, sid, pid, t) for pid, t in rows]
                    for b in range(0, len(records), dest.batch_size):
                        sink.send(records[b : b + dest.batch_size], dedupe=False)
                        n += len(records[b : b + dest.batch_size])
                sent += n
                detail.append(
                    {"segment_id": sid, **group_fields(sid), "members": len(members),
                     "not_consented": unreachable, "sent": n}
                )  # fmt: skip
        except SinkError as e:
            error = str(e)
        except Exception as e:  # logged on the sync, the worker goes on
            error = f"{type(e).__name__}: {e}"
        if error == "stopped":
            return sync  # left running: the next start requests it again
        with self.lock:
            self.store.finish_sync(
                sync.id, utcnow(), members=total, held=held_total, sent=sent,
                detail=detail, error=error,
            )  # fmt: skip
            return self.store.sync(sync.id)

    def subscribed(self, dest: Destination) -> list[str]:
        """The segments a full sync of ``dest`` sends: its own, then each group's
        resolved members in priority order (a group deleted since is left out)."""
        out = list(dest.segments)
        if self.group_members is not None:
            for gid in dest.groups:
                with contextlib.suppress(KeyError):
                    out.extend(self.group_members(gid))
        return list(dict.fromkeys(out))

    def sync_now(self, destination_id: str, trigger: str = "manual") -> Sync:
        """Request a sync of one destination and run it in the calling thread (the CLI,
        with no server running)."""
        with self.lock:
            dest = self.store.get(destination_id)
            sync = self.store.request_sync(destination_id, trigger)
        try:
            return self.run_sync(dest, sync)
        finally:
            with self._guard:
                sink = self._sinks.pop(dest.id, None)
            if sink is not None:
                sink.close()

    def deliver_now(self, destination_id: str) -> dict[str, int]:
        """Send one destination's due deliveries in the calling thread (the CLI's
        replay): answers its counts per status afterwards."""
        now = utcnow()
        with self.lock:
            dest = self.store.get(destination_id)
            due = self.store.due(now, limit=1_000_000).get(destination_id, [])
        try:
            self.deliver(dest, due)
        finally:
            with self._guard:
                sink = self._sinks.pop(dest.id, None)
            if sink is not None:
                sink.close()
        with self.lock:
            return self.store.counts(destination_id)


def with_kept_key(old: Destination, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """``body`` of an update with the credentials (an esp's API key, a Kafka SASL
    password) it had where none is sent: they are never shown back, so a form cannot
    send them again."""
    config = body.get("config")
    if old.kind != body.get("type") or not isinstance(config, Mapping):
        return body
    kept = {
        k: old.config[k]
        for k in CREDENTIALS
        if old.config.get(k)
        and not config.get(k)
        and (k != "sasl_password" or config.get("sasl_username"))  # SASL still in use
    }
    return {**body, "config": {**config, **kept}} if kept else body


def replace_config(store: DestinationStore, destination_id: str, dest: Destination) -> Destination:
    """Give a destination a new configuration; a webhook sent without a secret keeps
    the one it had (or gets one)."""
    old = store.get(destination_id)
    if dest.kind == "webhook" and not dest.config.get("secret"):
        secret = old.config.get("secret") if old.kind == "webhook" else None
        secret = secret or "whsec_" + secrets.token_urlsafe(24)
        dest = replace(dest, config={**dest.config, "secret": secret})
    return store.update(destination_id, replace(dest, held_out=old.held_out))


def add(
    store: DestinationStore, dest: Destination, from_seq: int, *, prefix: str = "dst_"
) -> Destination:
    """Store a checked destination that receives the changes logged after ``from_seq``
    (a webhook without a secret gets one, shown once by the caller)."""
    if dest.kind == "webhook" and not dest.config.get("secret"):
        secret = "whsec_" + secrets.token_urlsafe(24)
        dest = replace(dest, config={**dest.config, "secret": secret})
    return store.create(replace(dest, from_seq=from_seq), prefix=prefix)


def offline_worker(app: Segflow) -> DestinationWorker:
    """A worker over a store no server holds (the CLI): syncs read the members with the
    batch evaluator; no changes are enqueued here (the server does that)."""
    from segflow.service.profiles import load_suppressions
    from segflow.service.segments import saved_holdouts

    suppressed = load_suppressions(app)
    store = app.destination_store(
        lambda: frozenset(s.id for s in app.registry.current().values() if not s.emit_events),
        lambda: saved_holdouts(app),
        lambda pid: bool(suppressed) and pid in suppressed,
    )
    return DestinationWorker(
        store,
        threading.RLock(),
        None,
        members=app.members,
        group_members=lambda gid: resolved_members(app, gid),
    )


def resolved_members(app: Segflow, group_id: str) -> list[str]:
    """A saved group's resolved member ids, highest priority first (KeyError: unknown)."""
    return app.registry.groups()[group_id].resolved_ids()


def destination_report(store: DestinationStore, dest: Destination) -> dict[str, Any]:
    """A destination with its delivery counts, its latest syncs (the delivery log) and
    its status: ``failing`` with dead-lettered deliveries or a failed latest sync,
    ``retrying`` with deliveries waiting for another try, else ``ok``."""
    counts = store.counts(dest.id)
    syncs = store.syncs(dest.id, limit=10)
    retrying, last_error = store.health(dest.id)
    if counts[DEAD] or (syncs and syncs[0].status == "failed"):
        status = "failing"
    elif retrying:
        status = "retrying"
    else:
        status = "ok"
    if syncs and syncs[0].error and not last_error:
        last_error = syncs[0].error
    return {
        **dest.to_dict(),
        "status": status,
        "last_error": last_error,
        "deliveries": counts,
        "syncs": [s.to_dict() for s in syncs],
    }


def destination_reach(
    store: DestinationStore, profile_id: str, segment_id: str | None = None
) -> list[dict[str, Any]]:
    """For each destination receiving ``segment_id`` (every one when None): whether
    ``profile_id`` is excluded from it and why (erasure, or its consent on the
    destination's channel: the statement with its time and source, else the unknown
    rule that applies)."""
    dests = store.destinations(segment_id=segment_id)
    states = store.consents.consent([profile_id]).get(profile_id, {})
    region = store.regions([profile_id]).get(profile_id)
    suppressed = store.suppressed(profile_id)
    out: list[dict[str, Any]] = []
    for d in dests:
        row: dict[str, Any] = {"destination_id": d.id, "name": d.name, "type": d.kind,
                               "channel": d.channel}  # fmt: skip
        if suppressed:
            row.update(excluded=True, reason="excluded: erased (on the suppression list)")
        elif d.channel is None:
            row.update(excluded=False, reason="sent: no consent check")
        else:
            dec = store.decision(d, states, region)
            verdict = f"sent on {d.channel}" if dec.allowed else f"excluded from {d.channel}"
            row.update(excluded=not dec.allowed, reason=f"{verdict}: {dec.reason}")
        out.append(row)
    return out


def consent_channels(store: DestinationStore, profile_id: str) -> list[dict[str, Any]]:
    """Each consent channel for one profile: ``granted``, ``denied`` (the statement's
    source and time) or ``unknown`` with the configured default for its region (a
    destination's own ``unknown_consent`` overrides it)."""
    states = store.consents.consent([profile_id]).get(profile_id, {})
    region = store.regions([profile_id]).get(profile_id)
    out: list[dict[str, Any]] = []
    for ch in CHANNELS:
        c = states.get(ch)
        dec = decide(c, ch, None, store.unknown, region)
        row: dict[str, Any] = {"channel": ch, "state": dec.state, "reason": dec.reason,
                               "source": c.source if c else None,
                               "at": format_instant(c.at) if c else None}  # fmt: skip
        if c is None:
            row["default"] = "allow" if dec.allowed else "deny"
            row["region"] = region
        out.append(row)
    return out
