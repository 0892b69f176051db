"""How a chosen set of segments overlaps over the same profiles.

Membership comes as a boolean matrix (profiles x segments) or as one packed bitmap per
segment.  Pairwise intersections are population counts of ANDed 64-bit words of the
per-segment bitmaps; combinations (which exact set of the chosen segments a profile is
in) are per-profile bit codes counted with ``np.unique``.  Both are vectorised, so the
cost is a few passes over the packed bits whatever the number of pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from segflow.analytics.plain import plain

BoolA: TypeAlias = npt.NDArray[np.bool_]
U8A: TypeAlias = npt.NDArray[np.uint8]
U64A: TypeAlias = npt.NDArray[np.uint64]
IntA: TypeAlias = npt.NDArray[np.int64]
FloatA: TypeAlias = npt.NDArray[np.float64]


class WarningKind(StrEnum):
    CONTAINED = "contained"
    NEAR_DUPLICATE = "near_duplicate"
    TOO_SMALL = "too_small"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a pair or a segment is worth a warning."""

    contained: float = 0.9
    """Share of a segment's members also in another, above which it is contained."""
    near_duplicate: float = 0.9
    """Jaccard index from which two segments are near-duplicates."""
    min_size: int = 100
    """Segments with fewer members are too small."""


@dataclass(frozen=True, slots=True)
class OverlapWarning:
    kind: WarningKind
    segments: tuple[str, ...]
    value: float
    threshold: float
    message: str


@dataclass(frozen=True, slots=True)
class Combination:
    """Profiles in exactly these segments of the chosen set and in no other of them."""

    segments: tuple[str, ...]
    count: int


@dataclass(frozen=True, eq=False)
class OverlapReport:
    """Pairwise matrices are indexed like ``segments``; shares and Jaccard indices are
    NaN where undefined (an empty segment, an empty union) and ``None`` in ``as_dict``."""

    segments: tuple[str, ...]
    n_profiles: int
    sizes: IntA
    intersections: IntA
    row_share: FloatA
    """``intersections[i, j] / sizes[i]``: the share of row segment i also in j."""
    jaccard: FloatA
    exclusive: IntA
    """Members of each segment in no other of the chosen segments."""
    in_any: int
    """Profiles in at least one of the chosen segments."""
    distinct_combinations: int
    top_combinations: tuple[Combination, ...]
    warnings: tuple[OverlapWarning, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self)
        return out


def overlap(
    members: npt.ArrayLike,
    segments: Sequence[str],
    *,
    top: int = 10,
    thresholds: Thresholds | None = None,
) -> OverlapReport:
    """Overlap of ``segments`` from a boolean matrix of profiles x segments."""
    _distinct(segments)
    m = np.asarray(members, dtype=np.bool_)
    if m.ndim != 2 or m.shape[1] != len(segments):
        raise ValueError(f"members must be profiles x {len(segments)} segments, got {m.shape}")
    rows = np.packbits(m, axis=1, bitorder="little")
    bitmaps = _transpose_bits(rows)[: len(segments)]
    return _report(_words(bitmaps), _words(rows), m.shape[0], segments, top, thresholds)


def overlap_packed(
    bitmaps: npt.ArrayLike,
    n_profiles: int,
    segments: Sequence[str],
    *,
    top: int = 10,
    thresholds: Thresholds | None = None,
) -> OverlapReport:
    """Overlap of ``segments`` from one packed bitmap per segment (rows of
    :func:`pack_members`: profile ``p`` is bit ``p % 8`` of byte ``p // 8``)."""
    _distinct(segments)
    b = np.asarray(bitmaps, dtype=np.uint8)
    nbytes = -(-n_profiles // 8)
    if b.ndim != 2 or b.shape != (len(segments), nbytes):
        raise ValueError(f"bitmaps must be {len(segments)} x {nbytes} bytes, got {b.shape}")
    spare = n_profiles % 8
    if spare and (b[:, -1] >> spare).any():
        raise ValueError("bitmaps have bits set past the last profile")
    rows = _transpose_bits(b)[:n_profiles]
    return _report(_words(b), _words(rows), n_profiles, segments, top, thresholds)


def pack_members(members: npt.ArrayLike) -> U8A:
    """One packed bitmap per segment (segments x bytes) from profiles x segments."""
    m = np.asarray(members, dtype=np.bool_)
    if m.ndim != 2:
        raise ValueError(f"members must be profiles x segments, got {m.shape}")
    return _transpose_bits(np.packbits(m, axis=1, bitorder="little"))[: m.shape[1]]


def _report(
    bitmaps: U64A,
    codes: U64A,
    n_profiles: int,
    segments: Sequence[str],
    top: int,
    thresholds: Thresholds | None,
) -> OverlapReport:
    ids = _distinct(segments)
    inter = _intersections(bitmaps)
    sizes = np.diagonal(inter).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = inter / sizes[:, None]
        jaccard = inter / (sizes[:, None] + sizes[None, :] - inter)
    keys, counts = _combinations(codes)
    distinct, in_any = len(counts), int(counts.sum())
    singles = np.flatnonzero(np.bitwise_count(keys).sum(axis=1) == 1)
    exclusive = np.zeros(len(ids), np.int64)
    exclusive[_decode(keys[singles], len(ids)).argmax(axis=1)] = counts[singles]
    order = _top(keys, counts, max(top, 0))
    chosen = _decode(keys[order], len(ids))
    combos = tuple(
        Combination(tuple(ids[j] for j in np.flatnonzero(row)), int(c))
        for row, c in zip(chosen, counts[order], strict=True)
    )
    return OverlapReport(
        segments=ids,
        n_profiles=n_profiles,
        sizes=sizes,
        intersections=inter,
        row_share=share,
        jaccard=jaccard,
        exclusive=exclusive,
        in_any=in_any,
        distinct_combinations=distinct,
        top_combinations=combos,
        warnings=_warnings(ids, sizes, share, jaccard, thresholds or Thresholds()),
    )


def _distinct(segments: Sequence[str]) -> tuple[str, ...]:
    ids = tuple(segments)
    if not ids or len(set(ids)) != len(ids):
        raise ValueError("overlap needs one or more distinct segments")
    return ids


def _warnings(
    ids: tuple[str, ...], sizes: IntA, share: FloatA, jaccard: FloatA, t: Thresholds
) -> tuple[OverlapWarning, ...]:
    """Near-duplicate pairs, then containments (a near-duplicate pair is reported once,
    as a near-duplicate), then segments below the minimum size."""
    out: list[OverlapWarning] = []
    upper = np.triu(np.ones(jaccard.shape, dtype=np.bool_), 1)
    dup = upper & (jaccard >= t.near_duplicate)  # NaN (both empty) compares false
    for i, j in zip(*np.nonzero(dup), strict=True):
        a, b, v = ids[i], ids[j], float(jaccard[i, j])
        msg = f"{a} and {b} are near-duplicates (Jaccard {v:.2f})"
        out.append(OverlapWarning(WarningKind.NEAR_DUPLICATE, (a, b), v, t.near_duplicate, msg))
    off = ~np.eye(len(ids), dtype=np.bool_) & ~(dup | dup.T)
    for i, j in zip(*np.nonzero(off & (share > t.contained)), strict=True):
        a, b, v = ids[i], ids[j], float(share[i, j])
        msg = f"{v:.1%} of {a} is also in {b}"
        out.append(OverlapWarning(WarningKind.CONTAINED, (a, b), v, t.contained, msg))
    for i in np.flatnonzero(sizes < t.min_size):
        msg = f"{ids[i]} has {sizes[i]} members, fewer than {t.min_size}"
        out.append(
            OverlapWarning(WarningKind.TOO_SMALL, (ids[i],), float(sizes[i]), t.min_size, msg)
        )
    return tuple(out)


def _transpose_bits(a: U8A) -> U8A:
    """Transpose a bit matrix: ``a`` (R rows x 8B bit columns, packed little-endian in B
    bytes) -> 8B rows x ceil(R / 8) bytes.  Each 8 x 8 block of bits is one 64-bit word,
    transposed with three masked delta swaps, so the cost is a few passes over the bytes."""
    rows, nbytes = a.shape
    groups = -(-rows // 8)
    if groups * 8 != rows:
        a = np.concatenate([a, np.zeros((groups * 8 - rows, nbytes), np.uint8)])
    x = np.ascontiguousarray(a.reshape(groups, 8, nbytes).transpose(0, 2, 1)).view("<u8")
    x = x.reshape(groups, nbytes).astype(np.uint64, copy=False)
    for shift, mask in _DELTA_SWAPS:
        t = (x ^ (x >> shift)) & mask
        x = x ^ t ^ (t << shift)
    out = x.astype("<u8", copy=False).view(np.uint8).reshape(groups, nbytes * 8)
    return np.ascontiguousarray(out.T)


_DELTA_SWAPS: Final = tuple(
    (np.uint64(shift), np.uint64(mask))
    for shift, mask in ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0))
)


def _words(packed: U8A) -> U64A:
    """Bytes per row, zero-padded to whole 64-bit words: (R, B) -> (R, ceil(B / 8))."""
    rows, nbytes = packed.shape
    width = -(-nbytes // 8) * 8 or 8
    if width == nbytes and packed.flags.c_contiguous:
        padded = packed
    else:
        padded = np.zeros((rows, width), np.uint8)
        padded[:, :nbytes] = packed
    return padded.view("<u8").astype(np.uint64, copy=False)


def _intersections(bitmaps: U64A) -> IntA:
    """Members in both segments of each pair: popcounts of ANDed words."""
    s = bitmaps.shape[0]
    out = np.zeros((s, s), np.int64)
    for i in range(s):
        row = np.bitwise_count(bitmaps[i] & bitmaps[i:]).sum(axis=1, dtype=np.int64)
        out[i, i:] = row
        out[i:, i] = row
    return out


def _combinations(codes: U64A) -> tuple[U64A, IntA]:
    """Distinct non-empty codes (rows of words), in no set order, with their counts."""
    if codes.shape[1] == 1:
        flat = codes[:, 0]
        keys, counts = np.unique(flat[flat != 0], return_counts=True, sorted=False)
        return keys[:, None], counts.astype(np.int64)
    rows = np.ascontiguousarray(codes[codes.any(axis=1)])
    void = rows.view(np.dtype((np.void, rows.shape[1] * 8))).ravel()
    _, first, counts = np.unique(void, return_index=True, return_counts=True)
    return rows[first], counts.astype(np.int64)


def _top(keys: U64A, counts: IntA, k: int) -> IntA:
    """Indices of the ``k`` largest counts, ties broken by the code's value, without
    sorting every combination."""
    pool = np.arange(len(counts))
    if k < len(counts):
        # the k-th largest count from a histogram: selection degrades on many equal counts
        from_top = np.cumsum(np.bincount(counts)[::-1])
        cut = len(from_top) - 1 - int(np.searchsorted(from_top, k))
        above, tied = np.flatnonzero(counts > cut), np.flatnonzero(counts == cut)
        need = k - len(above)
        if need < len(tied) and keys.shape[1] == 1:
            tied = tied[np.argpartition(keys[tied, 0], need - 1)[:need]] if need else tied[:0]
        pool = np.concatenate([above, tied])
    ranked: IntA = pool[np.lexsort((*keys[pool].T[::-1], -counts[pool]))]
    return ranked[:k]


def _decode(keys: U64A, s: int) -> BoolA:
    """Codes back to rows of booleans over the ``s`` segments."""
    raw = (
        np.ascontiguousarray(keys.astype("<u8"))
        .view(np.uint8)
        .reshape(len(keys), 8 * keys.shape[1])
    )
    return np.unpackbits(raw, axis=1, count=s, bitorder="little").astype(np.bool_)
