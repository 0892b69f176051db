"""How records leave for each kind of destination: signed HTTP POSTs, Redis Streams,
NATS JetStream, Kafka topics, files in a directory, ad platforms' customer-list
upload files.

A sink sends a batch of records (each the JSON a destination receives, with its
idempotency key) and raises ``SinkError`` when the batch was not accepted; the caller
(``service.destinations``) retries it with backoff.  A batch is accepted whole or
retried whole, so a receiver may see a record twice (after a crash or a partial
failure): each sink passes the idempotency key on so receivers, or the destination
itself, drop the repeat:

- webhook: ``X-Segflow-Delivery`` / ``Idempotency-Key`` headers and the body's key;
- Redis: a Lua script adds an entry only when ``SET key NX`` succeeds (a key per
  record, expiring after ``dedupe_ttl_s``), so a re-send adds nothing;
- NATS JetStream: the ``Nats-Msg-Id`` header, de-duplicated by the stream within its
  duplicate window;
- Kafka: the ``idempotency-key`` header (consumers drop a key seen before); the
  producer is idempotent, so librdkafka's own retries add no copies;
- files: a batch's file name is fixed by its first and last delivery, so a re-sent
  batch replaces its file; every row carries its key.

Files are written atomically (a temporary file in the directory, then a rename) and
listed in ``manifest.json`` (name, kind, rows, bytes, SHA-256), itself replaced
atomically after each file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import httpx
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from segflow.model.audiences import HEADERS, hashed_row
from segflow.model.changes import Reason
from segflow.model.time import format_instant, utcnow
from segflow.service.delivery import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    DeliverySettings,
    TargetRefused,
    check_target,
    sign,
)
from segflow.store.records.destinations import Destination

MANIFEST: Final = "manifest.json"
FILE_FORMATS: Final = ("jsonl", "csv", "parquet")


@dataclass(frozen=True)
class Record:
    """One record to send: ``ref`` names it in headers and file names (the delivery id,
    or the sync's), ``key`` is its idempotency key, ``body`` its JSON."""

    ref: str
    key: str
    body: bytes


class SinkError(Exception):
    """A batch was not accepted; ``unreachable``: the destination could not be reached
    at all (the rest of its due batches are not tried now)."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class Sink(Protocol):
    def send(self, records: Sequence[Record], *, dedupe: bool = True) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- webhook


def allowed_target(url: str, settings: DeliverySettings) -> None:
    """Refuse, before each send, a target the settings do not allow (the address a name
    resolves to may change after the destination was saved)."""
    try:
        check_target(
            url, allow_internal=settings.allow_internal, allow_private=settings.allow_private
        )
    except TargetRefused as e:
        raise SinkError(f"refused target: {e}") from None


class WebhookSink:
    """Signed POSTs: one record per request as its JSON body, or several as
    ``{"batch": [...]}`` (``batch_size`` above 1)."""

    def __init__(self, dest: Destination, settings: DeliverySettings) -> None:
        self.url = str(dest.config["url"])
        self.secret = str(dest.config["secret"])
        self.settings = settings
        self.client = httpx.Client(timeout=settings.timeout_s, follow_redirects=False)

    def send(self, records: Sequence[Record], *, dedupe: bool = True) -> None:
        allowed_target(self.url, self.settings)
        if len(records) == 1:
            body = records[0].body
            ref, key = records[0].ref, records[0].key
        else:
            body = b'{"batch":[' + b",".join(r.body for r in records) + b"]}"
            ref, key = f"{records[0].ref}-{records[-1].ref}", records[0].key
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "segflow-webhooks/1",
            SIGNATURE_HEADER: sign(self.secret, body, int(time.time())),
            DELIVERY_HEADER: ref,
            "Idempotency-Key": key,
        }
        try:
            r = self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise SinkError(f"{type(e).__name__}: {e}", unreachable=True) from None
        if not 200 <= r.status_code < 300:
            raise SinkError(f"HTTP {r.status_code}")

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------- redis

_XADD_ONCE: Final = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  if ARGV[4] == '0' then
    return redis.call('XADD', KEYS[1], '*', 'idempotency_key', ARGV[1], 'body', ARGV[2])
  end
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*',
                    'idempotency_key', ARGV[1], 'body', ARGV[2])
end
return false
"""
"""Add an entry only the first time its idempotency key is seen."""


class RedisSink:
    """XADD to a stream: fields ``idempotency_key`` and ``body`` (the record's JSON)."""

    def __init__(self, dest: Destination, settings: DeliverySettings) -> None:
        import redis

        self.stream = str(dest.config["stream"])
        self.maxlen = int(dest.config.get("maxlen") or 0)
        self.ttl = int(dest.config.get("dedupe_ttl_s") or 7 * 86400)
        self.client = redis.Redis.from_url(
            str(dest.config.get("url") or "redis://127.0.0.1:6379/0"),
            socket_timeout=settings.timeout_s,
            socket_connect_timeout=settings.timeout_s,
        )
        self.script = self.client.register_script(_XADD_ONCE)

    def send(self, records: Sequence[Record], *, dedupe: bool = True) -> None:
        import redis

        try:
            pipe = self.client.pipeline(transaction=False)
            for r in records:
                if dedupe:
                    self.script(
                        keys=[self.stream, f"segflow:dedupe:{self.stream}:{r.key}"],
                        args=[r.key, r.body, self.ttl, self.maxlen],
                        client=pipe,
                    )
                else:
                    fields: Any = {"idempotency_key": r.key, "body": r.body}
                    pipe.xadd(
                        self.stream,
                        fields,
                        maxlen=self.maxlen or None,
                        approximate=True,
                    )
            round_trip = pipe.execute  # one round trip for the whole batch
            round_trip()
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise SinkError(f"{type(e).__name__}: {e}", unreachable=True) from None
        except redis.RedisError as e:
            raise SinkError(f"{type(e).__name__}: {e}") from None

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------- nats


class NatsSink:
    """Publish to a JetStream subject (the stream is created when missing), each
    message with ``Nats-Msg-Id`` set to its idempotency key; a batch is published
    without waiting between messages, then every acknowledgement is awaited."""

    def __init__(self, dest: Destination, settings: DeliverySettings) -> None:
        self.url = str(dest.config.get("url") or "nats://127.0.0.1:4222")
        self.subject = str(dest.config["subject"])
        self.stream = str(dest.config.get("stream") or "SEGFLOW")
        self.timeout = settings.timeout_s
        self.loop = asyncio.new_event_loop()
        self.nc: Any = None
        self.js: Any = None

    async def _connect(self) -> Any:
        import nats
        from nats.js.errors import NotFoundError

        if self.nc is None or self.nc.is_closed:
            self.nc = await nats.connect(
                servers=[self.url],
                connect_timeout=self.timeout,
                allow_reconnect=False,
                max_reconnect_attempts=0,
            )
            self.js = self.nc.jetstream(timeout=self.timeout)
            try:
                info = await self.js.stream_info(self.stream)
            except NotFoundError:
                await self.js.add_stream(name=self.stream, subjects=[self.subject])
            else:
                subjects = list(info.config.subjects or [])
                if self.subject not in subjects:
                    info.config.subjects = [*subjects, self.subject]
                    await self.js.update_stream(info.config)
        return self.js

    async def _send(self, records: Sequence[Record], dedupe: bool) -> None:
        js = await self._connect()
        acks = []
        for r in records:
            headers = {"Nats-Msg-Id": r.key} if dedupe else None
            acks.append(await js.publish_async(self.subject, r.body, headers=headers))
        await asyncio.wait_for(asyncio.gather(*acks), self.timeout)

    def send(self, records: Sequence[Record], *, dedupe: bool = True) -> None:
        import nats.errors

        try:
            self.loop.run_until_complete(self._send(records, dedupe))
        except (OSError, nats.errors.NoServersError, nats.errors.ConnectionClosedError) as e:
            self._drop()
            raise SinkError(f"{type(e).__name__}: {e}", unreachable=True) from None
        except (TimeoutError, nats.errors.Error) as e:
            self._drop()
            raise SinkError(f"{type(e).__name__}: {e}") from None

    def _drop(self) -> None:
        nc, self.nc, self.js = self.nc, None, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):  # a broken connection: nothing to save
                self.loop.run_until_complete(nc.close())

    def close(self) -> None:
        self._drop()
        self.loop.close()


# --------------------------------------------------------------------------- kafka


KAFKA_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_KAFKA_UNREACHABLE: Final = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_MSG_TIMED_OUT")
"""librdkafka error names meaning no broker took the batch (the rest wait)."""


class KafkaSink:
    """Produce to a Kafka topic: each record keyed by its profile id (so one profile's
    records stay in order on one partition), the record JSON as value and the
    ``idempotency-key`` header.  A batch is produced without waiting, then flushed;
    any record the brokers did not acknowledge fails the batch, and what is still
    queued is purged so the retry is the only copy sent from here."""

    def __init__(self, dest: Destination, settings: DeliverySettings) -> None:
        self.topic = str(dest.config["topic"])
        self.timeout = settings.timeout_s
        self.conf: dict[str, Any] = {
            "bootstrap.servers": str(dest.config["bootstrap_servers"]),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": max(1000, int(settings.timeout_s * 1000)),
            "socket.connection.setup.timeout.ms": max(1000, int(settings.timeout_s * 1000)),
            "logger": _KAFKA_LOG,
        }
        for key, name in (
            ("security_protocol", "security.protocol"),
            ("sasl_mechanism", "sasl.mechanism"),
            ("sasl_username", "sasl.username"),
            ("sasl_password", "sasl.password"),
        ):
            if dest.config.get(key):
                self.conf[name] = str(dest.config[key])
        self.producer: Any = None

    def send(self, records: Sequence[Record], *, dedupe: bool = True) -> None:
        from confluent_kafka import KafkaException, Producer

        failed: list[Any] = []

        def acked(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(err)

        try:
            if self.producer is None:
                self.producer = Producer(self.conf)
            for r in records:
                self.producer.produce(
                    self.topic,
                    value=r.body,
                    key=_profile_key(r.body),
                    headers=[("idempotency-key", r.key.encode())],
                    on_delivery=acked,
                )
                self.producer.poll(0)
            left = self.producer.flush(self.timeout)
        except (KafkaException, BufferError) as e:
            self._drop()
            raise SinkError(f"Kafka: {e}") from None
        if left or failed:
            self._drop()
            names = {e.name() for e in failed}
            reason = "; ".join(sorted({e.str() for e in failed})) or f"{left} not acknowledged"
            raise SinkError(
                f"Kafka topic {self.topic!r}: {reason}",
                unreachable=bool(left) or bool(names & set(_KAFKA_UNREACHABLE)),
            )

    def _drop(self) -> None:
        """Forget the producer and whatever it still holds (the batch is retried whole)."""
        producer, self.producer = self.producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.purge()
                producer.flush(0)

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(self.timeout)
        self.producer = None


def _profile_key(body: bytes) -> bytes | None:
    pid = orjson.loads(body).get("profile_id")
    return pid.encode() if isinstance(pid, str) else None


_KAFKA_LOG: Final = logging.getLogger("segflow.kafka")
"""librdkafka's own log lines (connection attempts), kept out of stderr."""


# --------------------------------------------------------------------------- files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> Any:
    """``write`` a temporary file beside ``path``, flush it to disk, rename it over."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        out = write(tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _column(values: list[Any]) -> pa.Array[Any]:
    """A typed column when the values allow it, else their JSON text."""
    try:
        arr: pa.Array[Any] = pa.array(values)
        return arr
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(
            [None if v is None else orjson.dumps(v).decode() for v in values], pa.string()
        )


def rows_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Change records as a flat table: the record's fields, then one column per trait."""
    names: dict[str, None] = {}
    for r in rows:
        for k in r:
            if k != "traits":
                names[k] = None
    traits: dict[str, None] = {}
    for r in rows:
        for k in r.get("traits") or {}:
            traits[k] = None
    cols = {k: _column([r.get(k) for r in rows]) for k in names}
    for k in traits:
        name = k if k not in cols else f"traits.{k}"
        cols[name] = _column([(r.get("traits") or {}).get(k) for r in rows])
    return pa.table(cols)


class FileSink:
    """Drops files into a directory: change batches as ``changes-<first>-<last>.<fmt>``,
    syncs as ``sync-<id>-<segment>.<fmt>``, each listed in ``manifest.json``."""

    def __init__(self, dest: Destination, settings: DeliverySettings | None = None) -> None:
        self.dir = Path(str(dest.config["path"]))
        self.format = str(dest.config.get("format") or "jsonl")
        self.destination_id = dest.id

    def send(self, records: Sequence[Record], *, dedupe: bool = True) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = f"changes-{records[0].ref}-{records[-1].ref}.{self.format}"
            rows = [orjson.loads(r.body) for r in records]
            self._add(name, "changes", None, lambda p: self._write_rows(p, rows))
        except OSError as e:
            raise SinkError(f"{type(e).__name__}: {e}") from None

    def _write_rows(self, path: Path, rows: list[dict[str, Any]]) -> int:
        if self.format == "jsonl":
            with path.open("wb") as fh:
                for r in rows:
                    fh.write(orjson.dumps(r) + b"\n")
        elif self.format == "csv":
            pacsv.write_csv(rows_table(rows), path)
        else:
            pq.write_table(rows_table(rows), path)
        return len(rows)

    def write_sync(
        self, sync_id: int, segment_id: str, write: Callable[[Path], int]
    ) -> dict[str, Any]:
        """One segment's members of a sync: ``write(path)`` fills the file and returns
        its rows; answers its manifest entry."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = f"sync-{sync_id}-{segment_id}.{self.format}"
            return self._add(name, "sync", {"sync_id": sync_id, "segment_id": segment_id}, write)
        except OSError as e:
            raise SinkError(f"{type(e).__name__}: {e}") from None

    def _add(
        self,
        name: str,
        kind: str,
        extra: dict[str, Any] | None,
        write: Callable[[Path], int],
    ) -> dict[str, Any]:
        path = self.dir / name
        rows = _write_atomically(path, write)
        entry = {
            "name": name,
            "kind": kind,
            **(extra or {}),
            "format": self.format,
            "rows": int(rows),
            "bytes": path.stat().st_size,
            "sha256": _sha256(path),
            "created_at": format_instant(utcnow()),
        }
        manifest = self.manifest()
        files = [f for f in manifest.get("files", []) if f.get("name") != name]
        files.append(entry)
        doc = {
            "destination_id": self.destination_id,
            "updated_at": format_instant(utcnow()),
            "files": files,
        }
        _write_atomically(
            self.dir / MANIFEST,
            lambda p: p.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2)),
        )
        return entry

    def manifest(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = orjson.loads((self.dir / MANIFEST).read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}
        return doc

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- audiences


class AudienceSink(FileSink):
    """Upload files for an ad platform's customer list (``platform`` meta or google):
    CSV with the platform's hashed email and phone columns.  Entries go to
    ``add-<first>-<last>.csv``, exits to ``remove-<first>-<last>.csv`` (a platform
    removes members with a separate upload), a sync to ``sync-<id>-<segment>.csv``.
    Members with neither a usable email nor a usable phone are left out and counted
    as ``skipped`` in the file's manifest entry."""

    def __init__(self, dest: Destination, settings: DeliverySettings | None = None) -> None:
        super().__init__(dest, settings)
        self.format = "csv"
        self.platform = str(dest.config["platform"])
        self.region = dest.config.get("default_region") or None

    def rows(self, traits: Sequence[Mapping[str, Any]]) -> tuple[list[tuple[str, str]], int]:
        """Hashed rows of members' ``email``/``phone`` (the mapped traits), and how many
        were skipped."""
        out: list[tuple[str, str]] = []
        for t in traits:
            row = hashed_row(t.get("email"), t.get("phone"), self.platform, self.region)
            if row is not None:
                out.append(row)
        return out, len(traits) - len(out)

    def _write_csv(self, path: Path, rows: Sequence[tuple[str, str]]) -> int:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(HEADERS[self.platform])
            w.writerows(rows)
        return len(rows)

    def _upload(self, name: str, kind: str, traits: Sequence[Mapping[str, Any]],
                extra: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        rows, skipped = self.rows(traits)
        extra = {**(extra or {}), "platform": self.platform, "skipped": skipped}
        return self._add(name, kind, extra, lambda p: self._write_csv(p, rows))

    def send(self, records: Sequence[Record], *, dedupe: bool = True) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            span = f"{records[0].ref}-{records[-1].ref}"
            bodies = [orjson.loads(r.body) for r in records]
            for kind, event in (("add", "segment.entered"), ("remove", "segment.exited")):
                mine = [b.get("traits") or {} for b in bodies if b.get("type") == event]
                if mine:
                    self._upload(f"{kind}-{span}.csv", kind, mine)
        except OSError as e:
            raise SinkError(f"{type(e).__name__}: {e}") from None

    def write_audience(
        self, sync_id: int, segment_id: str, traits: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """One segment's members of a full sync as one upload file."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = f"sync-{sync_id}-{segment_id}.csv"
            extra = {"sync_id": sync_id, "segment_id": segment_id}
            return self._upload(name, "sync", traits, extra)
        except OSError as e:
            raise SinkError(f"{type(e).__name__}: {e}") from None


# --------------------------------------------------------------------------- ESPs

ESP_PROVIDERS: Final = ("mailchimp", "klaviyo")
KLAVIYO_REVISION: Final = "2024-10-15"
RETRIES_429: Final = 3
"""Answers 429 waited out (``Retry-After``, else a doubling backoff) within one send."""
MAX_RETRY_AFTER_S: Final = 30.0


def _esp_base(provider: str, api_key: str) -> str:
    if provider == "klaviyo":
        return "https://a.klaviyo.com"
    dc = api_key.rpartition("-")[2] or "us1"  # a Mailchimp key ends with its data centre
    return f"https://{dc}.api.mailchimp.com/3.0"


def _klaviyo_profile(email: str, subscribe: bool) -> dict[str, Any]:
    if not subscribe:
        return {"email": email}
    return {"email": email, "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}


class EspSink:
    """Subscribes entering members (and a sync's) to an email service provider's list
    and unsubscribes exiting ones, by email.  Mailchimp: one batch
    ``POST /lists/{id}`` with ``members`` and ``update_existing`` (Basic auth, the API
    key as password).  Klaviyo: ``POST /api/profile-subscription-bulk-create-jobs`` and
    ``-bulk-delete-jobs`` JSON:API documents (``Klaviyo-API-Key`` auth, a pinned
    ``revision``).  Subscribing twice is harmless on both, so a re-sent batch is too.
    A profile erased here (an exit with reason ``deleted``) is erased there too:
    Mailchimp's ``POST /lists/{id}/members/{md5 of the address}/actions/delete-permanent``,
    Klaviyo's ``POST /api/data-privacy-deletion-jobs``; deleting twice is harmless."""

    def __init__(self, dest: Destination, settings: DeliverySettings) -> None:
        self.provider = str(dest.config["provider"])
        self.list_id = str(dest.config["list_id"])
        self.api_key = str(dest.config["api_key"])
        base = dest.config.get("base_url") or _esp_base(self.provider, self.api_key)
        self.base = str(base).rstrip("/")
        self.settings = settings
        self.backoff_s = 0.5
        self.client = httpx.Client(timeout=settings.timeout_s, follow_redirects=False)

    def calls(self, records: Sequence[Record]) -> list[tuple[str, dict[str, Any] | None]]:
        """The (path, JSON body) requests that carry ``records``; members without an
        email are left out."""
        subscribe: list[str] = []
        unsubscribe: list[str] = []
        erase: list[str] = []
        for r in records:
            body = orjson.loads(r.body)
            email = (body.get("traits") or {}).get("email")
            if not isinstance(email, str) or "@" not in email:
                continue
            email = email.strip()
            if body.get("type") != "segment.exited":
                subscribe.append(email)
            elif body.get("reason") == Reason.DELETED:
                erase.append(email)
            else:
                unsubscribe.append(email)
        out = self._members_calls(subscribe, unsubscribe)
        for e in dict.fromkeys(erase):
            out.append(self._erase_call(e))
        return out

    def _erase_call(self, email: str) -> tuple[str, dict[str, Any] | None]:
        if self.provider == "mailchimp":
            member = hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()
            return f"/lists/{self.list_id}/members/{member}/actions/delete-permanent", None
        doc = {
            "data": {
                "type": "data-privacy-deletion-job",
                "attributes": {"profile": {"data": {"type": "profile", "attributes": {
                    "email": email}}}},
            }
        }  # fmt: skip
        return "/api/data-privacy-deletion-jobs", doc

    def _members_calls(
        self, subscribe: list[str], unsubscribe: list[str]
    ) -> list[tuple[str, dict[str, Any] | None]]:
        out: list[tuple[str, dict[str, Any] | None]] = []
        if self.provider == "mailchimp":
            members = [{"email_address": e, "status": "subscribed"} for e in subscribe] + [
                {"email_address": e, "status": "unsubscribed"} for e in unsubscribe
            ]
            if members:
                out.append(
                    (f"/lists/{self.list_id}", {"members": members, "update_existing": True})
                )
            return out
        for emails, job in ((subscribe, "create"), (unsubscribe, "delete")):
            if not emails:
                continue
            subscribing = job == "create"
            doc = {
                "data": {
                    "type": f"profile-subscription-bulk-{job}-job",
                    "attributes": {
                        "profiles": {
                            "data": [
                                {"type": "profile", "attributes": _klaviyo_profile(e, subscribing)}
                                for e in emails
                            ]
                        }
                    },
                    "relationships": {"list": {"data": {"type": "list", "id": self.list_id}}},
                }
            }
            out.append((f"/api/profile-subscription-bulk-{job}-jobs", doc))
        return out

    def _headers(self) -> dict[str, str]:
        if self.provider == "klaviyo":
            return {
                "Authorization": f"Klaviyo-API-Key {self.api_key}",
                "revision": KLAVIYO_REVISION,
                "Content-Type": "application/vnd.api+json",
                "Accept": "application/vnd.api+json",
            }
        basic = base64.b64encode(f"segflow:{self.api_key}".encode()).decode()
        return {"Authorization": f"Basic {basic}", "Content-Type": "application/json"}

    def send(self, records: Sequence[Record], *, dedupe: bool = True) -> None:
        allowed_target(self.base, self.settings)
        for path, doc in self.calls(records):
            self._post(path, doc)

    def _post(self, path: str, doc: dict[str, Any] | None) -> None:
        content = orjson.dumps(doc) if doc is not None else b""
        for attempt in range(RETRIES_429 + 1):
            try:
                r = self.client.post(self.base + path, content=content, headers=self._headers())
            except httpx.HTTPError as e:
                raise SinkError(f"{type(e).__name__}: {e}", unreachable=True) from None
            if 200 <= r.status_code < 300:
                return
            if r.status_code != 429 or attempt == RETRIES_429:
                raise SinkError(f"HTTP {r.status_code} from {self.provider}: {r.text[:200]}")
            time.sleep(self._retry_after(r.headers.get("Retry-After"), attempt))

    def _retry_after(self, header: str | None, attempt: int) -> float:
        try:
            wait = float(header) if header is not None else self.backoff_s * 2**attempt
        except ValueError:
            wait = self.backoff_s * 2**attempt
        return min(max(wait, 0.0), MAX_RETRY_AFTER_S)

    def close(self) -> None:
        self.client.close()


def make_sink(dest: Destination, settings: DeliverySettings) -> Sink:
    """The sink of ``dest``'s kind."""
    if dest.kind == "webhook":
        return WebhookSink(dest, settings)
    if dest.kind == "redis":
        return RedisSink(dest, settings)
    if dest.kind == "nats":
        return NatsSink(dest, settings)
    if dest.kind == "kafka":
        return KafkaSink(dest, settings)
    if dest.kind == "files":
        return FileSink(dest, settings)
    if dest.kind == "ad_audience":
        return AudienceSink(dest, settings)
    if dest.kind == "esp":
        return EspSink(dest, settings)
    raise ValueError(f"unknown destination type {dest.kind!r}")
