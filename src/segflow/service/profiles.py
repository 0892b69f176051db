"""The customer view of one profile, its privacy export and its erasure.

Service-level functions over a ``Segflow`` instance (callers hold the server lock), so
HTTP routes stay thin.  Erasure covers the profile and every profile merged into it:
it removes their events, traits, identities, memberships, merges and webhook
deliveries in one transaction, logs the exits through the live evaluator, replaces
their ids in the change log by a keyed pseudonym (the log's running sizes stay
exact), can add keyed hashes of their ids to the suppression list that ingestion
consults to drop later events, and then scrubs the file so no byte of the deleted
rows stays in it (``store.duckdb.erasure``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson

from segflow.model.consent import CHANNELS
from segflow.model.suppressions import Suppressions
from segflow.model.time import format_instant, parse_instant, utcnow
from segflow.service.segments import change_json, saved_holdouts

if TYPE_CHECKING:
    from segflow.service.handle import Segflow
    from segflow.service.live import LiveEvaluator
    from segflow.store.protocols import ProfileStore

RECENT_EVENTS: Final = 50
RECENT_ORDERS: Final = 20


def jsonable(v: Any) -> Any:
    """Store values (datetimes, numpy/Decimal-free DuckDB rows) as JSON-ready data."""
    if isinstance(v, datetime):
        return format_instant(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, float) and v != v:
        return None
    return v


def resolve(app: Segflow, profile_id: str) -> str | None:
    """The current profile for an id: a profile id, a user or anonymous id, an
    alias's previous id, or an id that was merged away (merges are followed)."""
    store = app.profiles
    if store.exists(profile_id):
        return profile_id
    found = store.by_identity(profile_id)
    if found is not None:
        return found
    seen = {profile_id}
    current = profile_id
    while True:
        into = store.merged_to(current)
        if into is None or into in seen:
            break
        current = into
        seen.add(current)
        if store.exists(current):
            return current
    return None


def list_profiles(
    app: Segflow, *, limit: int, after: str | None = None, q: str | None = None
) -> dict[str, Any]:
    """Profiles in id order with name, email and last seen, a page at a time
    (``next_cursor``: pass it as ``after``); with ``q``, those whose id, an identity,
    name or email contains it (case-insensitive)."""
    store = app.profiles
    if q:
        found = store.search(q, limit=limit + 1, after=after)
    else:
        page = store.page(limit=limit + 1, after=after)
        cards = store.cards([p for p, _ in page])
        found = [(p, *cards.get(p, (None, None)), t) for p, t in page]
    more = len(found) > limit
    found = found[:limit]
    return {
        "profiles": [
            {"profile_id": p, "name": n, "email": e, "last_seen": format_instant(t)}
            for p, n, e, t in found
        ],
        "next_cursor": found[-1][0] if more and found else None,
    }


def _shown(ev: Mapping[str, Any]) -> dict[str, Any]:
    """A stored event as the customer view shows it (JSON values, no empty parts)."""
    return {
        k: jsonable(v)
        for k, v in ev.items()
        if v not in (None, {}) and k not in ("seq", "profile_id")
    }


def _events(
    store: ProfileStore, profile_id: str, *, names: tuple[str, ...] = (), limit: int
) -> list[dict[str, Any]]:
    return [_shown(ev) for ev in store.recent_events(profile_id, names=names, limit=limit)]


def cart(store: ProfileStore, profile_id: str) -> list[dict[str, Any]]:
    """Products whose latest add/remove since the last order is an add (the open cart)."""
    lines: dict[str, dict[str, Any]] = {}
    for ev in store.cart_events(profile_id):
        props = ev.get("properties") or {}
        pid = props.get("product_id")
        if pid is None:
            continue
        if ev["event"] == "Product Added":
            lines[str(pid)] = {
                "product_id": pid,
                **{k: props[k] for k in ("name", "category", "price", "quantity") if k in props},
                "added_at": format_instant(ev["timestamp"]),
            }
        else:
            lines.pop(str(pid), None)
    return list(lines.values())


PRODUCT_FIELDS: Final = ("product_id", "name", "price", "quantity", "category")
ORDER_HISTORY: Final = 2000
"""Newest Product Added/Removed events read to rebuild what each recent order held."""


def _line(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: props[k] for k in PRODUCT_FIELDS if props.get(k) is not None}


def order_products(
    store: ProfileStore, profile_id: str, orders: list[dict[str, Any]]
) -> list[list[dict[str, Any]]]:
    """The products of each stored order event (newest first, as ``orders``): its
    ``products`` list
    when it has one (Segment's e-commerce spec), else the cart it closed: the products
    added and not removed between the previous order and it."""
    if not orders:
        return []
    out: list[list[dict[str, Any]] | None] = []
    for o in orders:
        listed = (o.get("properties") or {}).get("products")
        out.append(
            [_line(p) for p in listed if isinstance(p, Mapping) and p.get("product_id") is not None]
            if isinstance(listed, list)
            else None
        )
    if any(x is None for x in out):
        events = store.recent_events(
            profile_id,
            names=("Product Added", "Product Removed", "Order Completed"),
            limit=ORDER_HISTORY,
        )
        carts: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
        lines: dict[str, dict[str, Any]] = {}
        for ev in reversed(events):  # oldest first
            props = ev.get("properties") or {}
            if ev["event"] == "Order Completed":
                carts[(ev["timestamp"], ev.get("message_id"))] = list(lines.values())
                lines = {}
            elif props.get("product_id") is not None:
                key = str(props["product_id"])
                if ev["event"] == "Product Added":
                    lines[key] = _line(props)
                else:
                    lines.pop(key, None)
        for i, o in enumerate(orders):
            if out[i] is None:
                out[i] = carts.get((o["timestamp"], o.get("message_id")), [])
    return [x or [] for x in out]


def with_products(
    store: ProfileStore, items: list[dict[str, Any]], latest: list[bool]
) -> list[dict[str, Any]]:
    """``items`` (dicts with a ``product_id``) with the ``name``, ``price`` and
    ``category`` the latest product event that carried each had: in place of the
    item's own where ``latest`` says so (a cart line, a wishlist item: what the product
    is now), else only where the item has none (an order line keeps what was paid)."""
    ids = sorted({str(i["product_id"]) for i in items if i.get("product_id") is not None})
    known = store.products(ids) if ids else {}
    out = []
    for item, now in zip(items, latest, strict=True):
        info = known.get(str(item.get("product_id")), {})
        out.append({**item, **info} if now else {**info, **item})
    return out


def segments_of(app: Segflow, live: LiveEvaluator | None, profile_id: str) -> dict[str, str | None]:
    """Segment -> member since (live memberships; else the last batch evaluation)."""
    if live is not None:
        return {s: format_instant(t) for s, t in sorted(live.segments_of(profile_id).items())}
    return {s: None for s in app.profiles.evaluated_segments(profile_id)}


def consent_of(app: Segflow, profile_id: str) -> dict[str, Any]:
    """Channel -> ``{granted, source, at}`` for each channel the profile spoke about."""
    states = app.consent.consent([profile_id]).get(profile_id, {})
    return {ch: states[ch].to_json() for ch in CHANNELS if ch in states}


def profile_view(
    app: Segflow, live: LiveEvaluator | None, profile_id: str, at: datetime | None = None
) -> dict[str, Any]:
    """Identities, traits, computed traits, orders, cart, wishlist, recent click-stream
    and segments of one (resolved) profile."""
    store = app.profiles
    now = at or utcnow()
    computed = app.computed_traits(now, [profile_id])
    comp = {k: jsonable(v) for k, v in computed[0].items() if k != "profile_id"} if computed else {}
    seen = store.seen(profile_id)
    raw_orders = store.recent_events(profile_id, names=("Order Completed",), limit=RECENT_ORDERS)
    ordered = order_products(store, profile_id, raw_orders)
    lines = cart(store, profile_id)
    wishlist = comp.get("wishlist", [])
    in_orders = [p for items in ordered for p in items]
    filled = iter(
        with_products(
            store,
            [*in_orders, *lines, *({"product_id": w} for w in wishlist)],
            [False] * len(in_orders) + [True] * (len(lines) + len(wishlist)),
        )
    )
    ordered = [[next(filled) for _ in items] for items in ordered]
    lines = [next(filled) for _ in lines]
    wish_items = [next(filled) for _ in wishlist]
    orders = [
        {**_shown(ev), "products": jsonable(items)}
        for ev, items in zip(raw_orders, ordered, strict=True)
    ]
    name, email = store.cards([profile_id]).get(profile_id, (None, None))
    return {
        "profile_id": profile_id,
        "name": name,
        "email": email,
        "first_seen": jsonable(seen[0]) if seen else None,
        "last_seen": jsonable(seen[1]) if seen else None,
        "identities": [{"kind": k, "value": v} for k, v in app.store.identities(profile_id)],
        "traits": jsonable(app.store.traits_as_of(profile_id)),
        "consent": consent_of(app, profile_id),
        "computed_traits": comp,
        "orders": orders,
        "cart": jsonable(lines),
        "wishlist": wishlist,
        "wishlist_items": jsonable(wish_items),
        "recent_events": _events(store, profile_id, limit=RECENT_EVENTS),
        "segments": segments_of(app, live, profile_id),
    }


def encode_before(ts: datetime, message_id: str) -> str:
    """The timeline's cursor: the last event shown, (timestamp, message id)."""
    raw = orjson.dumps({"t": format_instant(ts), "m": message_id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_before(text: str) -> tuple[datetime, str | None]:
    """``before`` as a timeline cursor or as an ISO 8601 instant (every event earlier);
    ValueError naming what it expected."""
    try:
        return parse_instant(text), None
    except ValueError:
        pass
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return parse_instant(data["t"]), str(data["m"])
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise ValueError(
            f"{text[:40]!r} is neither an ISO 8601 instant nor a next_before cursor"
        ) from None


def timeline(
    app: Segflow,
    profile_id: str,
    *,
    limit: int,
    before: str | None = None,
    types: Sequence[str] = (),
    names: Sequence[str] = (),
) -> dict[str, Any]:
    """A page of a profile's click-stream, newest first; ``next_before`` continues it."""
    cursor = decode_before(before) if before else None
    rows = app.profiles.timeline(
        profile_id, limit=limit + 1, before=cursor, types=types, names=names
    )
    more = len(rows) > limit
    rows = rows[:limit]
    events = []
    for r in rows:
        ev: dict[str, Any] = {
            "at": format_instant(r["timestamp"]),
            "type": r["type"],
            "event": r.get("event"),
            "properties": jsonable(r.get("properties") or {}),
            "message_id": r["message_id"],
        }
        if r.get("traits"):
            ev["traits"] = jsonable(r["traits"])
        if r.get("context"):
            ev["context"] = jsonable(r["context"])
        events.append(ev)
    last = rows[-1] if rows else None
    return {
        "events": events,
        "next_before": encode_before(last["timestamp"], last["message_id"])
        if more and last is not None
        else None,
    }


def privacy_export(app: Segflow, live: LiveEvaluator | None, profile_id: str) -> dict[str, Any]:
    """Everything held on a profile: identities, every event and trait write, memberships,
    the change log, merges and the deliveries to destinations that name it (those to
    webhooks also under their older key)."""
    store = app.profiles
    traits = [
        {"key": k, "timestamp": format_instant(t), "message_id": m, "value": v}
        for k, t, m, v in store.trait_writes(profile_id)
    ]
    log = app.changes
    ids = store.merged_into(profile_id)
    holdouts = saved_holdouts(app)
    changes = [
        change_json(c, holdouts)
        for c in sorted((c for i in ids for c in log.query(profile_id=i)), key=lambda c: c.seq)
    ]
    merges = [
        {"from": a, "into": b, "at": format_instant(t)} for a, b, t in store.merges_naming(ids)
    ]
    named = store.deliveries_naming(ids)
    deliveries = [
        {"id": i, "destination_id": d, "type": k, "status": s, "body": b} for i, d, k, s, b in named
    ]
    webhook_deliveries = [
        {"id": i, "webhook_id": d, "status": s, "body": b}
        for i, d, k, s, b in named
        if k == "webhook"
    ]
    return {
        "profile_id": profile_id,
        "exported_at": format_instant(utcnow()),
        "identities": [{"kind": k, "value": v} for k, v in app.store.identities(profile_id)],
        "traits": traits,
        "consent": consent_of(app, profile_id),
        "events": _events(store, profile_id, limit=2**62),
        "segments": segments_of(app, live, profile_id),
        "membership_changes": changes,
        "merges": merges,
        "deliveries": deliveries,
        "webhook_deliveries": webhook_deliveries,
    }


def load_suppressions(app: Segflow) -> Suppressions:
    """The stored suppression list (keyed hashes of ids)."""
    out = Suppressions()
    app.profiles.load_suppressions(out)
    return out


def erase(
    app: Segflow,
    live: LiveEvaluator | None,
    profile_id: str,
    *,
    suppress: bool = False,
    suppressions: Suppressions | None = None,
    enqueue: Callable[[], None] | None = None,
) -> tuple[int, str]:
    """Delete the profile, and every profile merged into it: events, traits,
    identities, memberships, merges and destination deliveries naming them; their
    change-log rows keep only a pseudonym.  Exits are logged by the live evaluator
    first; ``enqueue`` (the delivery worker's ``catch_up``) then queues them with the
    mapped traits read before they go, so destinations still learn who left (an ad
    audience removes the hashes, an email list deletes the address): those pending
    exits are the only deliveries kept, under the pseudonym, and their bodies are
    scrubbed once delivered.  With ``suppress`` the hashes of their ids join
    ``suppressions`` (and the stored list).  Then the file is scrubbed.  Returns
    (exits logged, pseudonym)."""
    store = app.profiles
    alias = store.pseudonym(profile_id)
    merged = store.merged_into(profile_id)
    ids = sorted({*merged, *store.identity_values(merged)})
    exits = live.forget_profile(profile_id) if live is not None else []
    if enqueue is not None and exits:
        enqueue()
    store.erase(
        merged,
        alias,
        suppress=ids if suppress else (),
        suppressions=suppressions,
        keep_deliveries=[c.seq for c in exits],
    )
    return len(exits), alias
