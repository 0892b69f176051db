"""Webhook delivery: signed POSTs of membership changes, retried with exponential backoff.

A dispatcher thread turns new change-log rows into outbox rows (see
``store.duckdb.outbox``) and hands each idle destination its due deliveries; each
destination posts on a thread of its own, outside the server lock, one delivery after
another, and records each outcome under the lock.  Destinations never wait on each
other: while one is busy (a destination that accepts the connection and never
answers holds its thread until the timeout) the dispatcher keeps serving the rest.
A destination answers 2xx to accept; anything else (or no answer within the timeout)
is retried ``backoff * 2**n`` later until ``max_attempts``, then the delivery is
dead-lettered and can be replayed.  When a destination cannot be reached at all, the
rest of its batch is rescheduled with the same error without trying it (its next
attempt is due with the first one's).

Targets: a URL naming a link-local or cloud metadata address (169.254.0.0/16,
fe80::/10, ``metadata.google.internal``, ...), an unspecified or multicast address,
or the server itself is refused unless ``allow_internal`` (``Settings
.allow_internal_webhook_targets``); loopback and private networks are accepted unless
``allow_private`` is off (``Settings.allow_private_webhook_targets``).  A host name is
resolved again before every attempt, so a name that later points inside is refused
then.

Signature header (verify it before trusting a body)::

    X-Segflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

import httpx

from segflow.model.changes import LoggedChange
from segflow.model.time import utcnow
from segflow.store.duckdb.outbox import Delivery, Webhook, WebhookStore

SIGNATURE_HEADER: Final = "X-Segflow-Signature"
DELIVERY_HEADER: Final = "X-Segflow-Delivery"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, tolerance_s: float = 300.0) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is recent (receivers' side)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


METADATA_HOSTS: Final = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)
"""Cloud instance metadata services reachable by name (their addresses are link-local)."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """A webhook URL that points somewhere deliveries must not go."""


def _internal(ip: IpAddress) -> bool:
    """Link-local (metadata), unspecified, multicast or reserved: never a destination."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:  # ::1 lies in IPv6's reserved ::/8
        return False
    return ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip.is_reserved


def _private(ip: IpAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_private or ip in ipaddress.ip_network("100.64.0.0/10")


def _addresses(host: str, resolve: bool) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_target(
    url: str,
    *,
    allow_internal: bool = False,
    allow_private: bool = True,
    own: Iterable[tuple[str, int]] = (),
    resolve: bool = True,
) -> None:
    """Raise TargetRefused when ``url`` points at a metadata/link-local, unspecified or
    multicast address, at one of ``own`` (this server's host, port), or (unless
    ``allow_private``) at a loopback or private address.  ``resolve`` looks host names
    up (a name that does not resolve passes: the attempt itself will fail)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise TargetRefused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("the URL's port is not a number from 0 to 65535") from None
    addrs = _addresses(host, resolve)
    if not allow_internal:
        if host in METADATA_HOSTS:
            raise TargetRefused(f"{host} is a cloud metadata service")
        for ip in addrs:
            if _internal(ip):
                raise TargetRefused(f"{host} is a link-local, unspecified or reserved address")
        for own_host, own_port in own:
            if port != own_port:
                continue
            if host == own_host.lower() or any(ip.is_loopback for ip in addrs):
                raise TargetRefused(f"{host}:{port} is this server")
    if not allow_private:
        for ip in addrs:
            if _private(ip):
                raise TargetRefused(f"{host} is a loopback or private address")


@dataclass(frozen=True)
class DeliverySettings:
    backoff: timedelta = timedelta(seconds=5)
    max_attempts: int = 8
    timeout_s: float = 5.0
    """Per attempt, per destination: connecting, sending and each wait for the answer."""
    poll_s: float = 1.0
    allow_internal: bool = False
    allow_private: bool = True


ChangesAfter = Callable[[int], Sequence[LoggedChange]]
STOP_GRACE_S: Final = 2.0
"""How long stopping waits for deliveries in flight (a dead destination's would hold
shutdown for its whole timeout)."""


class WebhookWorker:
    """The dispatcher thread and one delivery thread per busy destination; ``wake()``
    after new changes are logged."""

    def __init__(
        self,
        store: WebhookStore,
        lock: threading.RLock,
        changes_after: ChangesAfter | None,
        settings: DeliverySettings | None = None,
    ) -> None:
        self.store = store
        self.lock = lock
        self.changes_after = changes_after
        self.settings = settings or DeliverySettings()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._busy: dict[str, threading.Thread] = {}
        """Destination id -> the thread delivering its batch now."""
        self._clients: dict[str, httpx.Client] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="segflow-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop dispatching; deliveries in flight get a short grace to finish (one not
        recorded by then is pending still and is sent again after a restart)."""
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
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def wake(self) -> None:
        self._wake.set()

    def busy(self) -> set[str]:
        """Destinations with a batch in flight."""
        with self._guard:
            return set(self._busy)

    def run_once(self, now: datetime | None = None) -> int:
        """Enqueue new changes and hand every idle destination its due deliveries (each
        on its own thread); returns how many deliveries were handed out."""
        busy = self.busy()
        with self.lock:
            if not self.store.active():
                return 0
            if self.changes_after is not None:
                self.store.enqueue(self.changes_after(self.store.start_seq()))
            due = self.store.due(now or utcnow(), exclude=busy)
        by_hook: dict[str, list[tuple[Delivery, Webhook]]] = {}
        for item in due:
            by_hook.setdefault(item[1].id, []).append(item)
        for hook_id, items in by_hook.items():
            t = threading.Thread(
                target=self._deliver_batch,
                args=(hook_id, items),
                name=f"segflow-webhook-{hook_id}",
                daemon=True,
            )
            with self._guard:
                self._busy[hook_id] = t
            t.start()
        return len(due)

    def _deliver_batch(self, hook_id: str, items: list[tuple[Delivery, Webhook]]) -> None:
        try:
            self._deliver(items)
        except Exception:  # the store closed under a stopping server: still pending
            pass
        finally:
            with self._guard:
                self._busy.pop(hook_id, None)
            self._wake.set()

    def _deliver(self, items: list[tuple[Delivery, Webhook]]) -> None:
        """One destination's due deliveries, in order.  When it cannot be reached, the
        rest are rescheduled with that error untried: they would wait as long each."""
        unreachable: str | None = None
        for delivery, hook in items:
            if self._stop.is_set():
                return
            error = unreachable or self._post(delivery, hook)
            if error is not None and unreachable is None and not error.startswith("HTTP "):
                unreachable = f"{error} (not tried: destination unreachable)"
            with self.lock:
                if error is None:
                    self.store.delivered(delivery.id, utcnow())
                else:
                    self.store.failed(
                        delivery,
                        error,
                        utcnow(),
                        self.settings.backoff,
                        self.settings.max_attempts,
                    )

    def _client(self, hook_id: str) -> httpx.Client:
        with self._guard:
            client = self._clients.get(hook_id)
            if client is None:
                client = httpx.Client(timeout=self.settings.timeout_s, follow_redirects=False)
                self._clients[hook_id] = client
            return client

    def _post(self, delivery: Delivery, hook: Webhook) -> str | None:
        try:
            check_target(
                hook.url,
                allow_internal=self.settings.allow_internal,
                allow_private=self.settings.allow_private,
            )
        except TargetRefused as e:
            return f"refused target: {e}"
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "segflow-webhooks/1",
            SIGNATURE_HEADER: sign(hook.secret, delivery.body, int(time.time())),
            DELIVERY_HEADER: str(delivery.id),
        }
        try:
            r = self._client(hook.id).post(hook.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {e}"
        if 200 <= r.status_code < 300:
            return None
        return f"HTTP {r.status_code}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                made = self.run_once()
            except Exception:  # keep delivering after a transient store error
                made = 0
            if made:
                continue
            busy = self.busy()
            with self.lock:
                nxt = self.store.next_due(exclude=busy)
            wait = self.settings.poll_s
            if nxt is not None:
                wait = max(0.0, min(wait, (nxt - utcnow()).total_seconds()))
            self._wake.wait(wait)
            self._wake.clear()
