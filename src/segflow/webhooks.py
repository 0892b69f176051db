"""Webhook delivery: signed POSTs of membership changes, retried with exponential backoff.

The worker is one thread.  It turns new change-log rows into outbox rows (see
``store.webhooks``), posts what is due outside the server lock (destinations in
parallel, each one's deliveries in order), and records each outcome under it.  A
destination answers 2xx to accept; anything else (or no answer within the timeout)
is retried ``backoff * 2**n`` later until ``max_attempts``, then the delivery is
dead-lettered and can be replayed.

Signature header (verify it before trusting a body)::

    X-Segflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import httpx

from segflow.store.segments import utcnow
from segflow.store.webhooks import ChangeLike, Delivery, Webhook, WebhookStore

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


@dataclass(frozen=True)
class DeliverySettings:
    backoff: timedelta = timedelta(seconds=5)
    max_attempts: int = 8
    timeout_s: float = 5.0
    poll_s: float = 1.0


ChangesAfter = Callable[[int], Sequence[ChangeLike]]


class WebhookWorker:
    """Background delivery thread; ``wake()`` after new changes are logged."""

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
        self._client = httpx.Client(timeout=self.settings.timeout_s, follow_redirects=False)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="segflow-webhook")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="segflow-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def wake(self) -> None:
        self._wake.set()

    def run_once(self, now: datetime | None = None) -> int:
        """Enqueue new changes and attempt every due delivery; returns attempts made."""
        with self.lock:
            if not self.store.active():
                return 0
            if self.changes_after is not None:
                self.store.enqueue(self.changes_after(self.store.start_seq()))
            due = self.store.due(now or utcnow())
        by_hook: dict[str, list[tuple[Delivery, Webhook]]] = {}
        for item in due:
            by_hook.setdefault(item[1].id, []).append(item)
        if len(by_hook) == 1:
            self._deliver(next(iter(by_hook.values())))
        else:
            list(self._pool.map(self._deliver, by_hook.values()))
        return len(due)

    def _deliver(self, items: list[tuple[Delivery, Webhook]]) -> None:
        """One destination's due deliveries, in order (destinations run in parallel, so
        a slow one does not hold up the others)."""
        for delivery, hook in items:
            error = self._post(delivery, hook)
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

    def _post(self, delivery: Delivery, hook: Webhook) -> str | None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "segflow-webhooks/1",
            SIGNATURE_HEADER: sign(hook.secret, delivery.body, int(time.time())),
            DELIVERY_HEADER: str(delivery.id),
        }
        try:
            r = self._client.post(hook.url, content=delivery.body, headers=headers)
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
            with self.lock:
                nxt = self.store.next_due()
            wait = self.settings.poll_s
            if nxt is not None:
                wait = max(0.0, min(wait, (nxt - utcnow()).total_seconds()))
            self._wake.wait(wait)
            self._wake.clear()
