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

from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

from segflow.model.consent import CHANNELS
from segflow.model.time import format_instant, utcnow
from segflow.service.segments import change_json, saved_holdouts
from segflow.store.duckdb.erasure import Suppressions

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
    app: Segflow, *, limit: int, after: str | None = None, prefix: str | None = None
) -> dict[str, Any]:
    """Profile ids in order, a page at a time (``next_cursor``: pass it as ``after``)."""
    rows = app.profiles.page(limit=limit + 1, after=after, prefix=prefix)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "profiles": [{"profile_id": p, "last_seen": format_instant(t)} for p, t in rows],
        "next_cursor": rows[-1][0] if more and rows else None,
    }


def _events(
    store: ProfileStore, profile_id: str, *, names: tuple[str, ...] = (), limit: int
) -> list[dict[str, Any]]:
    return [
        {
            k: jsonable(v)
            for k, v in ev.items()
            if v not in (None, {}) and k not in ("seq", "profile_id")
        }
        for ev in store.recent_events(profile_id, names=names, limit=limit)
    ]


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
    return {
        "profile_id": profile_id,
        "first_seen": jsonable(seen[0]) if seen else None,
        "last_seen": jsonable(seen[1]) if seen else None,
        "identities": [{"kind": k, "value": v} for k, v in app.store.identities(profile_id)],
        "traits": jsonable(app.store.traits_as_of(profile_id)),
        "consent": consent_of(app, profile_id),
        "computed_traits": comp,
        "orders": _events(store, profile_id, names=("Order Completed",), limit=RECENT_ORDERS),
        "cart": cart(store, profile_id),
        "wishlist": comp.get("wishlist", []),
        "recent_events": _events(store, profile_id, limit=RECENT_EVENTS),
        "segments": segments_of(app, live, profile_id),
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
) -> tuple[int, str]:
    """Delete the profile, and every profile merged into it: events, traits,
    identities, memberships, merges and destination deliveries naming them; their
    change-log rows keep only a pseudonym.  Exits are logged by the live evaluator
    first.  With ``suppress`` the hashes of their ids join ``suppressions`` (and the
    stored list).  Then the file is scrubbed.  Returns (exits logged, pseudonym)."""
    store = app.profiles
    alias = store.pseudonym(profile_id)
    merged = store.merged_into(profile_id)
    ids = sorted({*merged, *store.identity_values(merged)})
    exits = len(live.forget_profile(profile_id)) if live is not None else 0
    store.erase(merged, alias, suppress=ids if suppress else (), suppressions=suppressions)
    return exits, alias
