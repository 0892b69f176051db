"""The server's fast catch-up: ``catch_up(store.last_load)`` feeds the engine from the
messages the store just parsed instead of reading the stored rows back.  It must give
exactly the changes the read-back path gives (same inputs, same order), and fall back
to reading whenever the description is not exact (merges, dotted keys, values that do
not survive the store's JSON unchanged, anything stored in between)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import astuple
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from segflow.model.changes import LoggedChange
from segflow.model.definition import parse_segment
from segflow.model.time import format_instant
from segflow.realtime import VirtualClock
from segflow.service.handle import Segflow
from segflow.service.live import LiveEvaluator
from segflow.store.duckdb.history import MessageFields
from segflow.store.records.history import FieldInfo, StoredEvents
from tests.helpers import Run
from tests.strategies import LIVE_EXAMPLES, LiveScenario, live_scenarios

pytestmark = pytest.mark.slow  # conformance runs, twice each

T = datetime(2026, 1, 1)
FAST_RUNS = {"fast": 0, "catch_ups": 0}


class Twin(Run):
    """A conformance run ingesting like the server (JSON values, described loads) and
    catching up from the description (``fast``) or by reading the rows back."""

    def __init__(self, sc: LiveScenario, path: Path, *, fast: bool) -> None:
        super().__init__(sc, path)
        self.fast = fast
        self.fresh: StoredEvents | None = None

    def ingest(self, msgs: list[dict[str, Any]]) -> None:
        parsed = orjson.loads(orjson.dumps(msgs))  # as the HTTP API hands them over
        self.app.store.ingest_messages(parsed, json_values=True, describe=True)
        self.fresh = self.app.store.last_load

    def catch_up(self) -> list[LoggedChange]:
        before = self.live.fast_catch_ups
        out = self.live.catch_up(self.fresh if self.fast else None)
        self.fresh = None
        FAST_RUNS["catch_ups"] += self.fast
        FAST_RUNS["fast"] += self.live.fast_catch_ups - before
        return out


def _logged(run: Run) -> list[tuple[Any, ...]]:
    """The stored log without ``recorded_at`` (wall-clock time of recording)."""
    return [c[:7] for c in map(astuple, run.live.log.query())]


def _twin(sc: LiveScenario, root: Path, fast: bool) -> Twin:
    return Twin(sc, root / ("fast.duckdb" if fast else "read.duckdb"), fast=fast)


@settings(
    max_examples=max(20, LIVE_EXAMPLES // 2),  # two stores per example; live_equals_batch has more
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(sc=live_scenarios())
def test_fast_catch_up_logs_exactly_what_reading_back_logs(
    sc: LiveScenario, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("twin")
    fast, slow = _twin(sc, root, True), _twin(sc, root, False)
    try:
        fast.run(sql_checks=False)
        slow.run(sql_checks=False)
        assert fast.log == slow.log
        assert _logged(fast) == _logged(slow)
        for pid in slow.app.store.profile_ids():
            assert fast.live.segments_of(pid) == slow.live.segments_of(pid)
    finally:
        fast.close()
        slow.close()


def test_the_fast_path_is_taken_in_the_scenarios() -> None:
    """Runs after the property test in this module: most catch-ups there had no merge,
    so they must have been fed from the description (else the test above proves
    nothing)."""
    if FAST_RUNS["catch_ups"] == 0:
        pytest.skip("the scenario test did not run")
    assert FAST_RUNS["fast"] > FAST_RUNS["catch_ups"] // 4


# -- targeted cases -----------------------------------------------------------------


def _at(hours: float) -> datetime:
    return T + timedelta(hours=hours)


def _track(pid: str, name: str, hours: float, mid: str, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "userId": pid,
        "timestamp": format_instant(_at(hours)),
        "messageId": mid,
        "properties": props,
    }


SEGMENTS = [
    {"id": "spent", "condition": {"event": "Buy", "measure": "sum", "of": "properties.price",
                                  "gte": 100}},
    {"id": "shoes", "condition": {"event": "Buy", "where": {"property": "tag", "eq": "shoes"}}},
    {"id": "gift", "condition": {"event": "Buy", "where": {"property": "gift", "eq": True}}},
    {"id": "many", "condition": {"event": "Buy", "measure": "count", "gte": 3, "within": "2h"}},
]  # fmt: skip


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Segflow, Segflow]]:
    apps = (Segflow(tmp_path / "fast.duckdb"), Segflow(tmp_path / "read.duckdb"))
    for sf in apps:
        sf.registry.save([parse_segment(s) for s in SEGMENTS])
        sf.store.ingest_messages([_track("u0", "Buy", 0, "seed", price=1, tag="x", gift=False)])
    yield apps
    for sf in apps:
        sf.close()


LOADS: list[list[dict[str, Any]]] = [
    # ints into a DOUBLE column come back as floats; a late event; same-instant ties
    [
        _track("u1", "Buy", 2, "b", price=60, tag="shoes"),
        _track("u1", "Buy", 2, "a", price=50.5, gift=True),
        _track("u2", "Buy", 1, "c", price=7, tag='x\\y \u00e9"q'),
        _track("u2", "View", 3, "d", price=1000),
    ],
    # a string where a number was (it spills to ``extra``), a list, an object, a null
    [
        _track("u1", "Buy", 3, "e", price="lots", tag=["shoes"], gift=None),
        _track("u3", "Buy", 3, "f", price={"amount": 5}, tag="shoes", gift=True),
        _track("u3", "Buy", 3.5, "g", price=99, tag=None, gift="yes"),
    ],
    # a float where the column is text (it would spill as JSON: read back)
    [_track("u3", "Buy", 4, "h", price=1.5, tag=2.5)],
    # a dotted key (two spellings of one path: read back)
    [{**_track("u4", "Buy", 4, "i", price=500), "properties": {"price": 500, "a.b": 1}}],
    # an integer past 2**53 (read back)
    [_track("u4", "Buy", 4.5, "j", price=2**60)],
    # a duplicate message id, a fresh one, an anonymous visitor; a number in text spills
    [
        _track("u1", "Buy", 5, "a", price=50.5),
        _track("u5", "Buy", 5, "k", price=100, tag=3),
        {**_track("", "Buy", 5, "k2", price=1), "userId": None, "anonymousId": "anon-9"},
    ],
    # a merge (read back), then plain events again
    [
        {
            "type": "identify",
            "userId": "u5",
            "anonymousId": "anon-9",
            "timestamp": format_instant(_at(5.5)),
            "messageId": "l",
        }
    ],
    [_track("u5", "Buy", 6, "m", price=1, tag="shoes")],
]
FAST: list[bool] = [True, True, False, False, False, True, False, True]


def test_fast_catch_up_equals_reading_back_on_tricky_values(pair: tuple[Segflow, Segflow]) -> None:
    fast_app, read_app = pair
    clocks = (VirtualClock(_at(1.5)), VirtualClock(_at(1.5)))
    fast = LiveEvaluator(fast_app, clocks[0])
    read = LiveEvaluator(read_app, clocks[1])
    assert fast.start() == read.start()
    got: list[LoggedChange] = []
    want: list[LoggedChange] = []
    for i, (load, expect_fast) in enumerate(zip(LOADS, FAST, strict=True)):
        for c in clocks:
            c.set(_at(2.5 + i / 2))
        body = orjson.loads(orjson.dumps(load))
        fast_app.store.ingest_messages(body, json_values=True, describe=True)
        read_app.store.ingest_messages(orjson.loads(orjson.dumps(load)), json_values=True)
        before = fast.fast_catch_ups
        got += fast.catch_up(fast_app.store.last_load)
        want += read.catch_up()
        assert fast.fast_catch_ups - before == int(expect_fast), i
        assert got == want, i
    assert any(c.segment_id == "spent" for c in got)
    assert any(c.segment_id == "shoes" for c in got)


def test_a_description_that_is_not_the_latest_load_is_not_used(
    pair: tuple[Segflow, Segflow],
) -> None:
    app = pair[0]
    live = LiveEvaluator(app, VirtualClock(_at(1.5)))
    live.start()
    app.store.ingest_messages([_track("u1", "Buy", 1, "x1", price=1)], json_values=True,
                              describe=True)  # fmt: skip
    stale = app.store.last_load
    app.store.ingest_messages([_track("u1", "Buy", 1, "x2", price=200)], json_values=True)
    assert app.store.last_load is None
    out = live.catch_up(stale)
    assert live.fast_catch_ups == 0
    assert [(c.segment_id, c.entered) for c in out] == [("spent", True)]


def test_message_fields_mirror_the_reader() -> None:
    fields = {
        "properties.price": FieldInfo("DOUBLE", True),
        "properties.tag": FieldInfo("VARCHAR"),
        "properties.tags": FieldInfo("JSON"),
        "properties.gift": FieldInfo("BOOLEAN"),
        "context.page.url": FieldInfo("VARCHAR"),
    }
    columns = {"properties.price", "properties.tag", "properties.gift", "context.page.url"}
    read = MessageFields([*fields, "properties.unknown", "event"], fields, columns)
    roots: dict[str, Any] = {
        "properties": {"price": 3, "tag": "a", "tags": ["x", 1], "gift": False},
        "context": {"page": {"url": "/"}},
        "traits": {},
    }
    assert read(roots) == {
        "properties.price": 3.0,
        "properties.tag": "a",
        "properties.tags": ["x", 1],
        "properties.gift": False,
        "context.page.url": "/",
    }
    assert type(read(roots)["properties.price"]) is float  # type: ignore[index]
    roots["properties"] = {"price": "n/a", "tag": None, "gift": {"x": 1}}
    assert read(roots) == {"properties.price": "n/a", "context.page.url": "/"}
    roots["properties"] = {"tag": 5}  # a number where the column is text, not spilled
    assert read(roots) is None
    roots["properties"] = {"price": 2**53}
    assert read(roots) is None
    roots["properties"] = {"tags": [1.5]}  # a float through extra may change spelling
    assert read(roots) is None
    roots["properties"] = MappingProxyType({"tag": "a"})  # not a parser's dict
    assert read(roots) is None
