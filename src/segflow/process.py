"""Process-wide tuning shared by the core, the edge and the benchmarks."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Move everything built so far (live states, compiled plans) out of the
    collector's reach, and collect the young generation less often: a process that
    keeps millions of long-lived profile states otherwise spends a large share of its
    time re-scanning them (the server calls this once its states are loaded)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
