"""Which stored event has a given message id, without scanning every event.

``message_id`` makes ingestion idempotent, so every load must find the ids it repeats.
A semi-join of the load against ``events.message_id`` reads the whole column on every
group commit, a cost growing with the store that would cap the server's ingestion.
``MessageIndex`` keeps the 64-bit DuckDB ``hash`` of every stored message id with its
``seq`` in sorted NumPy arrays (16 bytes an event, built by one scan when
first needed, extended after each commit).  A load's ids are looked up by binary
search; only the (rare) ids whose hash is already there are compared with the stored
ids themselves, by ``seq``, so a hash collision can never drop an event.

The index is a cache of the DuckDB file in this process: rebuilt on start, and stale
entries (events since erased) only cost that exact comparison.
"""

from __future__ import annotations

from typing import Final

import duckdb
import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
_EMPTY: Final = np.empty(0, np.int64)


class MessageIndex:
    """hash(message_id) -> seq for every stored event (see the module doc).

    Kept as sorted runs, merged like a binary counter (a run is merged into the one
    before it once it is at least half its size): adding is amortised O(log n) per
    entry, a look-up searches at most ~log2(n) runs."""

    def __init__(self, hashes: U64, seqs: I64, *, presorted: bool = False) -> None:
        self.runs: list[tuple[U64, I64]] = []
        if presorted:
            if len(hashes):
                self.runs.append((hashes, seqs))
        else:
            self.add(hashes, seqs)

    @classmethod
    def build(cls, con: duckdb.DuckDBPyConnection) -> MessageIndex:
        """One scan of the stored events, hashed and sorted by DuckDB (in parallel)."""
        got = con.execute("SELECT hash(message_id) AS h, seq FROM events ORDER BY h").fetchnumpy()
        return cls(_u64(got["h"]), _i64(got["seq"]), presorted=True)

    def __len__(self) -> int:
        return sum(len(h) for h, _ in self.runs)

    def add(self, hashes: U64, seqs: I64) -> None:
        """Entries of events just committed."""
        if not len(hashes):
            return
        order = np.argsort(hashes)
        self.runs.append((hashes[order], seqs[order]))
        runs = self.runs
        while len(runs) > 1 and len(runs[-2][0]) <= 2 * len(runs[-1][0]):
            (h2, s2), (h1, s1) = runs.pop(), runs.pop()
            hs, ss = np.concatenate([h1, h2]), np.concatenate([s1, s2])
            order = np.argsort(hs, kind="stable")  # two sorted runs: a linear merge
            runs.append((hs[order], ss[order]))

    def add_since(self, con: duckdb.DuckDBPyConnection, base: int) -> None:
        """Entries of the events with ``seq > base`` (a load just committed)."""
        got = con.execute(
            "SELECT hash(message_id) AS h, seq FROM events WHERE seq > $b", {"b": base}
        ).fetchnumpy()
        self.add(_u64(got["h"]), _i64(got["seq"]))

    def candidates(self, hashes: U64) -> tuple[I64, I64]:
        """(positions in ``hashes``, stored seq) for every stored entry with an equal
        hash: the only ids that can repeat a stored one.  The hashes are searched in
        sorted order: NumPy then starts each search where the last one ended, instead
        of a cache miss per step for millions of random hashes."""
        pos_parts: list[I64] = []
        seq_parts: list[I64] = []
        order = np.argsort(hashes) if self.runs else _EMPTY
        keys = hashes[order]
        for run_h, run_s in self.runs:
            lo = np.searchsorted(run_h, keys, side="left")
            hi = np.searchsorted(run_h, keys, side="right")
            counts = hi - lo
            hit = np.flatnonzero(counts)
            if not len(hit):
                continue
            n = counts[hit]
            pos_parts.append(np.repeat(order[hit], n).astype(np.int64))
            # the stored entries lo..hi-1 of each hit, in one vector
            first = np.repeat(lo[hit], n)
            offset = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
            seq_parts.append(run_s[first + offset])
        if not pos_parts:
            return _EMPTY, _EMPTY
        return np.concatenate(pos_parts), np.concatenate(seq_parts)


def _u64(a: object) -> U64:
    return np.asarray(a, dtype=np.uint64)


def _i64(a: object) -> I64:
    return np.asarray(a, dtype=np.int64)


__all__ = ["MessageIndex"]
