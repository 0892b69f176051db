"""The single-process host over a keyed topology's log: the reference its change log
must equal.

``run_in_process`` feeds the raw log (calls before identity resolution, and plan
changes) to one ``RealtimeRunner`` in arrival order on event time (``now`` = each call's
timestamp), resolving identities with the store's rules (``IdentityGraph``) and keeping
each profile's history as the store does (a merged-away profile's inputs move to the
profile it merged into).  A call that merges profiles is handled as the live evaluator's
``catch_up`` handles a merge: the merged-away profiles' deadlines fire and their
memberships exit (``merged``), their states and timers go; the surviving profile's
deadlines fire, it is rebuilt from the union history (the merging call included) and the
differences are logged (``merged``).  A plan change is handled as a save's hand-over:
every deadline up to its instant fires under the old plan, every profile is rebuilt
under the new one and the differences are logged (``definition_changed``, ``deleted``).
"""

from __future__ import annotations

from collections.abc import Sequence

from segflow.model.changes import LoggedChange
from segflow.model.time import from_us
from segflow.realtime import ProfileEngine, RealtimeRunner, VirtualClock
from segflow.stream.identity import IdentityGraph, Item, PlanChange
from segflow.stream.keyed import Message, logged_by, merge_away, merge_into, switch_plan


def run_in_process(
    engines: ProfileEngine | Sequence[ProfileEngine], items: Sequence[Item], until: int
) -> list[LoggedChange]:
    """The change log of ``items`` (in arrival order) in one process, advanced to
    ``until`` µs at the end.  ``engines``: the plans' engines by plan number."""
    plans = (engines,) if isinstance(engines, ProfileEngine) else tuple(engines)
    engine = plans[0]
    clock = VirtualClock(from_us(items[0].ts if items else until))
    runner = RealtimeRunner(engine, clock=clock, keep_log=False)
    graph = IdentityGraph()
    histories: dict[str, list[Message]] = {}
    log: list[LoggedChange] = []
    for item in items:
        if isinstance(item, PlanChange):
            log += logged_by(engine, runner.advance_to(from_us(item.ts)))
            new = plans[item.plan]
            states = runner.states
            runner = RealtimeRunner(new, clock=clock, keep_log=False)
            for pid, old in sorted(states.items()):
                st, switched = switch_plan(engine, new, old, pid, histories[pid], item.ts)
                runner.states[pid] = st
                runner.timers.schedule(pid, new.next_deadline_us(st))
                log += switched
            engine = new
            continue
        pid, merged = graph.resolve(item)
        message = None
        if item.is_input:
            message = Message(item.seq, pid, item.ts, item.name, item.payload, item.message_id)
        if merged:
            history = histories.setdefault(pid, [])
            for a in merged:
                gone = runner.states.pop(a, None)
                runner.timers.schedule(a, None)
                if gone is not None:
                    log += logged_by(engine, merge_away(engine, gone, item.ts))
                history += histories.pop(a, ())
            if message is not None:
                history.append(message)
            st, changes = merge_into(engine, runner.states.get(pid), pid, history, item.ts)
            runner.states[pid] = st
            runner.timers.schedule(pid, engine.next_deadline_us(st))
            log += logged_by(engine, changes)
            continue
        if message is None:
            continue
        histories.setdefault(pid, []).append(message)
        ts = item.ts
        if item.name is None:
            runner.state(pid)  # an identify makes the profile known, traits or not
            for key, value in item.payload.items():
                log += logged_by(
                    engine, runner.set_trait_us(pid, ts, item.message_id, key, value, ts)
                )
        else:
            log += logged_by(engine, runner.ingest_us(pid, ts, item.name, item.payload, ts))
    log += logged_by(engine, runner.advance_to(from_us(until)))
    return log


__all__ = ["run_in_process"]
