"""Sequences: ordered steps matched by strictly increasing event times, within a window
and an optional span."""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from typing import Any

from segflow.plan.features import SequenceMatch
from segflow.realtime.kernels.base import R_EVENT, R_NONE, R_REWAKE, R_WINDOW, Kernel
from segflow.realtime.state import ProfileState
from segflow.realtime.values import NEVER, window_offsets


class SequenceKernel(Kernel):
    """Per step, the sorted times of matching events that are (or will be) in the window;
    the greedy earliest chain is recomputed only when it can flip (an event enters while
    unmatched, or leaves while matched).  Without a relative window a match is final.
    While unmatched, leaving events cannot flip anything: they are pruned lazily and the
    only expiry wake-up is when the last one leaves (to free the state).

    Per profile, one int64 array holds it all: ``[entered_0..entered_{n-1},
    len_0..len_{n-1}, times of step 0, times of step 1, ...]``; of each step's sorted
    times the first ``entered_i`` are in the window, the rest wait to enter."""

    __slots__ = ("frm", "n", "since", "span", "to", "until")

    def __init__(self, k: int, spec: SequenceMatch) -> None:
        super().__init__(k, False)
        self.n = len(spec.steps)
        self.to, self.frm, self.since, self.until = window_offsets(spec.window)
        self.span = spec.span.us if spec.span is not None else None

    def _start(self, d: array[int], i: int) -> int:
        """Where step ``i``'s times begin in the packed array."""
        n = self.n
        s = 2 * n
        for j in range(n, n + i):
            s += d[j]
        return s

    def _prune(self, d: array[int], lim: int) -> bool:
        """Drop entered times <= ``lim`` of every step; True if any left."""
        n = self.n
        s = 2 * n
        left = False
        for i in range(n):
            h = d[i]
            if h and d[s] <= lim:
                drop = bisect_right(d, lim, s, s + h) - s
                del d[s : s + drop]
                d[i] = h - drop
                d[n + i] -= drop
                left = True
            s += d[n + i]
        return left

    def insert(
        self, st: ProfileState, ts: int, name: str, fields: Mapping[str, Any], now: int, arg: int
    ) -> int:
        k = self.k
        if self.frm is None:
            if st.vals[k] is True or ts < self.since or ts >= self.until:
                return R_NONE
        elif ts <= now - self.frm:
            return R_NONE
        n = self.n
        d = st.data[self.slot]
        if d is None:
            d = st.data[self.slot] = array("q", (0,)) * (2 * n)
        elif self.frm is not None and not st.vals[k]:
            self._prune(d, now - self.frm)
        s = self._start(d, arg)
        ln = d[n + arg]
        pos = bisect_left(d, ts, s, s + ln)
        if pos < s + ln and d[pos] == ts:
            return R_NONE
        if arg == 0 and self.frm is None and self.span is None:
            # only the earliest first step matters when nothing ever leaves
            if ln:
                if d[s] <= ts:
                    return R_NONE
                del d[s : s + ln]
                d[0] = 0
                d[n] = 0
            pos = s
        d.insert(pos, ts)
        d[n + arg] += 1
        if ts > now - self.to:
            return R_REWAKE
        d[arg] += 1
        wake = R_REWAKE if pos == s else R_NONE
        if st.vals[k]:
            return wake
        if self._matched(d):
            st.vals[k] = True
            if self.frm is None:
                st.data[self.slot] = None
            return R_EVENT | R_REWAKE
        return wake

    def _matched(self, d: array[int]) -> bool:
        n = self.n
        starts = [2 * n]
        for i in range(n, 2 * n - 1):
            starts.append(starts[-1] + d[i])
        s0 = starts[0]
        span = self.span
        for idx in range(s0, s0 + d[0]):
            s = cur = d[idx]
            for i in range(1, n):
                si = starts[i]
                end = si + d[i]
                j = bisect_right(d, cur, si, end)
                if j >= end:
                    return False
                cur = d[j]
            if span is None or cur - s <= span:
                return True
        return False

    def advance(self, st: ProfileState, now: int) -> int:
        k = self.k
        d = st.data[self.slot]
        if d is None:
            return R_NONE
        n = self.n
        entered = False
        s = 2 * n
        for i in range(n):
            h0 = d[i]
            ln = d[n + i]
            h = bisect_right(d, now - self.to, s + h0, s + ln) - s
            if h > h0:
                entered = True
                d[i] = h
            s += ln
        left = self.frm is not None and self._prune(d, now - self.frm)
        matched = bool(st.vals[k])
        r = R_NONE
        if (matched and left) or (not matched and entered):
            now_matched = self._matched(d)
            if now_matched != matched:
                st.vals[k] = now_matched
                r = R_WINDOW if left or self.to else R_EVENT
                if now_matched and self.frm is None:
                    st.data[self.slot] = None
                    return r
        if len(d) == 2 * n:
            st.data[self.slot] = None
        return r

    def deadline(self, st: ProfileState, now: int) -> int:
        d = st.data[self.slot]
        if d is None:
            return NEVER
        n = self.n
        out = NEVER
        last = -NEVER
        matched = st.vals[self.k]
        s = 2 * n
        for i in range(n):
            hi = d[i]
            ln = d[n + i]
            if hi and self.frm is not None:
                if matched:
                    out = min(out, d[s] + self.frm)
                else:
                    last = max(last, d[s + hi - 1] + self.frm)
            if hi < ln:
                out = min(out, d[s + hi] + self.to)
            s += ln
        if last > -NEVER:
            out = min(out, max(last, now + 1))
        return out
