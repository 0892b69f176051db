"""What every delivery shares: the signature of webhook bodies, the targets a URL may
point at, and the retry settings (the worker is ``service.destinations``; how each
kind of destination sends is ``service.sinks``).

A webhook answers 2xx to accept; anything else (or no answer within the timeout) is
retried ``backoff * 2**n`` later until ``max_attempts``, then dead-lettered.

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
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final
from urllib.parse import urlsplit

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


STOP_GRACE_S: Final = 2.0
"""How long stopping waits for deliveries in flight (a dead destination's would hold
shutdown for its whole timeout)."""
