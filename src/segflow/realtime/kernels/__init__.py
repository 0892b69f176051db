"""Kernels: the incremental fold behind each feature of a plan, one module per kind.

A *kernel* is compiled once per feature and holds only static facts (window offsets,
measure, predicates); the per-profile data lives in the profile's ``ProfileState``.

Every event contributes to a feature during one *activity interval* ``[start, end)`` of
evaluation instants: ``within: W`` gives ``[ts, ts + W)``, ``{from_ago: F, to_ago: A}``
gives ``[ts + A, ts + F)``, no window or an absolute one ``[ts, ∞)`` (or never).  A
kernel keeps the events that are active now or will be (future events, events waiting
to enter an ``Ago`` window), drops the ones that never will be again, and reports the
next instant at which its value can change (``deadline``).

``base`` holds the protocol (``Kernel``) and the reason codes; ``aggregates`` the
all-time aggregates, ``windows`` the relative-window aggregates over shared timelines,
``sequences`` ordered steps, ``generic`` the rare features folded by the interpreter
itself, ``traits`` trait values and per-profile constants.
"""
