"""Each profile's consent per channel, read from the trait writes and ``Consent
Updated`` events the store holds (see ``segflow.model.consent``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from segflow.model.consent import CHANNELS, CONSENT_EVENT, DENIED, GRANTED, Consent
from segflow.store.duckdb.catalog import table_columns
from segflow.store.duckdb.sql import quote_ident, quote_str


def _flag(expr: str) -> str:
    """SQL reading a yes (true), a no (false) or nothing (NULL) from ``expr``."""
    yes = ", ".join(quote_str(v) for v in sorted(GRANTED))
    no = ", ".join(quote_str(v) for v in sorted(DENIED))
    text = f"lower(trim(CAST({expr} AS VARCHAR)))"
    return f"CASE WHEN {text} IN ({yes}) THEN TRUE WHEN {text} IN ({no}) THEN FALSE END"


class DuckDBConsent:
    """Consent reads on the store's connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def consent(
        self, profile_ids: Sequence[str] | None = None, channel: str | None = None
    ) -> dict[str, dict[str, Consent]]:
        """profile id -> channel -> its latest statement (profiles and channels with
        none are absent); of ``profile_ids`` (None: every profile), of ``channel``
        (None: every channel)."""
        channels = [channel] if channel is not None else list(CHANNELS)
        keys = [f"consent{sep}{c}" for c in channels for sep in (".", "_")]
        where_ids = " AND list_contains($ids, profile_id)" if profile_ids is not None else ""
        trait_value = (
            "CASE kind WHEN 'bool' THEN bool WHEN 'string' THEN "
            + _flag("str")
            + " WHEN 'number' THEN CASE num WHEN 1 THEN TRUE WHEN 0 THEN FALSE END END"
        )
        parts = [
            "SELECT profile_id, regexp_extract(key, '^consent[._](.*)$', 1) AS channel,"
            f" {trait_value} AS granted, 'trait ' || key AS source, \"timestamp\" AS ts,"
            f" message_id FROM traits WHERE list_contains($keys, key){where_ids}"
        ]
        columns = table_columns(self.con, "events")
        event = f"event = {quote_str(CONSENT_EVENT)}{where_ids}"
        source = quote_str(f"event {CONSENT_EVENT}")
        by_channel = "properties.channel" in columns and "properties.granted" in columns
        if by_channel:
            parts.append(
                'SELECT profile_id, lower("properties.channel") AS channel,'
                f" {_flag(quote_ident('properties.granted'))} AS granted, {source} AS source,"
                f' "timestamp" AS ts, message_id FROM events WHERE {event}'
                ' AND list_contains($channels, lower("properties.channel"))'
            )
        for c in channels:
            col = f"properties.{c}"
            if col in columns:
                parts.append(
                    f"SELECT profile_id, {quote_str(c)} AS channel,"
                    f" {_flag(quote_ident(col))} AS granted, {source} AS source,"
                    f' "timestamp" AS ts, message_id FROM events WHERE {event}'
                )
        params: dict[str, Any] = {"keys": keys}
        if profile_ids is not None:
            params["ids"] = list(profile_ids)
        if by_channel:
            params["channels"] = channels
        rows = self.con.execute(
            f"SELECT profile_id, channel, arg_max(granted, (ts, message_id)),"
            f" arg_max(source, (ts, message_id)), max(ts) FROM ({' UNION ALL '.join(parts)})"
            " WHERE granted IS NOT NULL GROUP BY profile_id, channel",
            params,
        ).fetchall()
        out: dict[str, dict[str, Consent]] = {}
        for pid, ch, granted, src, at in rows:
            out.setdefault(str(pid), {})[str(ch)] = Consent(str(ch), bool(granted), str(src), at)
        return out
