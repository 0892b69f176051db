"""Batch engines the shells reach without a store: reading a Segment warehouse in
place creates views at the engine and copies nothing, so no ``Segflow`` is opened."""

from __future__ import annotations

from segflow.store.engines import AttachReport, EngineUnavailable, attach_segment

__all__ = ["AttachReport", "EngineUnavailable", "attach_warehouse"]


def attach_warehouse(url: str, segment_schema: str) -> AttachReport:
    """Views at ``url`` over the Segment warehouse schema ``segment_schema``;
    ``EngineUnavailable`` names the engine, schema or table that is missing."""
    return attach_segment(url, segment_schema)
