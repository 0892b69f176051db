"""The real-time evaluator: per-profile incremental state machines over the feature plan,
a timer queue and an in-memory runner.  Memberships equal the batch evaluator's at every
instant, and every change carries the exact instant it happened::

    engine = compile_engine(build_plan(segments))
    st = engine.new_state("user-1", static_segments)
    changes = engine.apply(st, event, now)          # in order, late or from the future
    changes += engine.set_trait(st, trait_write, now)
    changes += engine.advance(st, t)                # fires every deadline <= t
    engine.next_deadline(st)                        # when to call advance next
    engine.explain(st, "cart_abandoners", t)        # why in / not in, as JSON data

``RealtimeRunner`` hosts many states with a ``TimerQueue`` and a ``Clock``; the ``*_us``
variants take int microseconds since the epoch (the hot path, no datetimes).
"""

from __future__ import annotations

from segflow.realtime.engine import Change, ProfileEngine, compile_engine
from segflow.realtime.state import (
    ProfileState,
    state_memory_bytes,
    state_size_bytes,
)
from segflow.realtime.timers import (
    Clock,
    RealtimeRunner,
    TimerQueue,
    VirtualClock,
    WallClock,
)

__all__ = [
    "Change",
    "Clock",
    "ProfileEngine",
    "ProfileState",
    "RealtimeRunner",
    "TimerQueue",
    "VirtualClock",
    "WallClock",
    "compile_engine",
    "state_memory_bytes",
    "state_size_bytes",
]
