"""What the web UI's builder and dashboard show: the catalogue of names a definition
can use (events with their fields, traits, computed traits, segments, pages) and the
dashboard's counts, rates, movers and alerts (callers hold the lock).

Every figure is bounded in cost at any store size: field statistics come from a fixed
sample of each event's newest rows, examples are approximate top values, and the
whole-table reads scan one or two narrow columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from segflow.model.definition import COMPUTED_TRAITS
from segflow.model.time import format_instant

if TYPE_CHECKING:
    from segflow.service.handle import Segflow

EXAMPLES: Final = 5
FIELD_SAMPLE: Final = 2000
"""Newest rows of each event name whose fields are described."""
MAX_EVENT_NAMES: Final = 200
"""Event names described with their fields (the most frequent); the rest are listed
with their counts only."""
PAGE_PATHS: Final = 20

_INSTANT: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_COMPUTED_TYPES: Final = {
    "number": "number",
    "days": "number",
    "time": "timestamp",
    "value": "string",
    "list": "list",
}


def _looks_like_instants(values: Iterable[Any]) -> bool:
    texts = [v for v in values if isinstance(v, str)]
    return bool(texts) and all(_INSTANT.match(v) for v in texts)


def ui_type(store_type: str, examples: list[Any]) -> str:
    """The picker's type of a stored field or trait kind: string, number, boolean,
    timestamp (ISO 8601 text), list or object."""
    t = store_type.lower()
    if t in ("double", "number", "bigint", "integer"):
        return "number"
    if t in ("boolean", "bool"):
        return "boolean"
    if t.startswith("json:"):
        inner = t.split(":", 1)[1]
        return {"array": "list", "object": "object", "boolean": "boolean"}.get(
            inner, "number" if inner in ("bigint", "double", "ubigint") else "string"
        )
    return "timestamp" if _looks_like_instants(examples) else "string"


def _field_path(path: str) -> str:
    """A stored field as a ``where`` names it (``category`` for ``properties.category``)."""
    return path.removeprefix("properties.")


def catalogue(app: Segflow) -> dict[str, Any]:
    """Everything a definition can name, with what the store has seen of it."""
    from segflow.traits.computed import DOCS

    ov = app.overview
    events: list[dict[str, Any]] = []
    for i, stats in enumerate(ov.event_names()):
        props: list[dict[str, Any]] = []
        if i < MAX_EVENT_NAMES:
            for f in ov.event_fields(stats.name, FIELD_SAMPLE, EXAMPLES):
                typ = ui_type(f.store_type, f.examples)
                examples = f.examples[:EXAMPLES] if typ not in ("list", "object") else []
                props.append({"path": _field_path(f.path), "type": typ, "examples": examples})
        events.append(
            {
                "name": stats.name,
                "count": stats.count,
                "first_seen": format_instant(stats.first_seen),
                "last_seen": format_instant(stats.last_seen),
                "properties": props,
            }
        )
    traits = [
        {
            "key": t.key,
            "type": ui_type(t.kind, t.examples),
            "profiles": t.profiles,
            "examples": t.examples[:EXAMPLES],
        }
        for t in ov.traits(EXAMPLES)
    ]
    described = {n.strip(): d.description for d in DOCS for n in d.name.split("/")}
    computed = [
        {"name": name, "type": _COMPUTED_TYPES[kind], "description": described.get(name, "")}
        for name, kind in COMPUTED_TRAITS.items()
    ]
    segments = [
        {"id": s.id, "name": s.name}
        for s in sorted(app.registry.current().values(), key=lambda s: s.id)
    ]
    pages = ov.pages(PAGE_PATHS)
    return {
        "events": events,
        "traits": traits,
        "computed": computed,
        "segments": segments,
        "pages": {"count": pages.count, "paths": pages.paths, "names": pages.names},
    }


def day_start(t: datetime) -> datetime:
    """The start of ``t``'s UTC day."""
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def days_back(t: datetime, n: int) -> datetime:
    return t - timedelta(days=n)
