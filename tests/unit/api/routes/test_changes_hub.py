"""The SSE hub's per-stream buffer: pushed changes queue up; a stream that falls too far
behind drops its buffer and is told to re-read the stored log."""

from __future__ import annotations

import asyncio

from segflow.api.routes.changes import MAX_BUFFERED, ChangeHub


def test_pushes_reach_every_stream_and_overflow_marks_lag() -> None:
    async def run() -> None:
        hub = ChangeHub()
        a, b = hub.register(), hub.register()
        hub.notify([1, 2])
        await asyncio.sleep(0)
        assert list(a.items) == [1, 2] and list(b.items) == [1, 2]
        assert a.event.is_set()
        hub.unregister(b)
        hub.notify(list(range(MAX_BUFFERED)))
        await asyncio.sleep(0)
        assert a.lagged and not a.items
        assert list(b.items) == [1, 2]

    asyncio.run(run())
