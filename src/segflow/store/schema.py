"""The DuckDB schema every part of segflow agrees on.

Events keep their core Segment fields as columns and every scalar leaf of
``properties``, ``context`` and ``traits`` as its own typed column named by its
dotted path (``"properties.revenue"``, ``"context.device.type"``).  A column's
type is fixed by the first value seen for that path (number -> DOUBLE, bool ->
BOOLEAN, string -> VARCHAR).  A later value of another type, and every
non-scalar value (arrays, objects inside arrays), is kept in ``extra`` (JSON,
same nesting as the message) and the typed column stays NULL for that row; the
catalog marks such a path ``overflow`` so the compiler knows to look there too.
Filtering on typed columns is what keeps the batch evaluator near a plain scan.

Timestamps are naive ``TIMESTAMP`` values in UTC with microsecond precision.
"""

from __future__ import annotations

from typing import Final

FIELD_TYPES: Final = ("DOUBLE", "BOOLEAN", "VARCHAR")

CORE_EVENT_COLUMNS: Final = (
    "message_id",
    "seq",
    "type",
    "event",
    "user_id",
    "anonymous_id",
    "profile_id",
    "timestamp",
    "received_at",
    "extra",
)

DDL: Final = """
CREATE SEQUENCE IF NOT EXISTS event_seq;
CREATE TABLE IF NOT EXISTS events (
    message_id   VARCHAR NOT NULL,
    seq          BIGINT NOT NULL,
    type         VARCHAR NOT NULL,
    event        VARCHAR,
    user_id      VARCHAR,
    anonymous_id VARCHAR,
    profile_id   VARCHAR NOT NULL,
    "timestamp"  TIMESTAMP NOT NULL,
    received_at  TIMESTAMP,
    extra        JSON
);
CREATE TABLE IF NOT EXISTS field_catalog (
    path     VARCHAR PRIMARY KEY,
    type     VARCHAR NOT NULL,
    overflow BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS traits (
    profile_id VARCHAR NOT NULL,
    key        VARCHAR NOT NULL,
    "timestamp" TIMESTAMP NOT NULL,
    message_id VARCHAR NOT NULL,
    kind       VARCHAR NOT NULL,
    num        DOUBLE,
    str        VARCHAR,
    bool       BOOLEAN,
    json       JSON
);
CREATE TABLE IF NOT EXISTS identities (
    kind       VARCHAR NOT NULL,
    value      VARCHAR NOT NULL,
    profile_id VARCHAR NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE TABLE IF NOT EXISTS profiles (
    profile_id VARCHAR PRIMARY KEY,
    first_seen TIMESTAMP NOT NULL,
    last_seen  TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS segment_definitions (
    segment_id VARCHAR NOT NULL,
    version    INTEGER NOT NULL,
    definition JSON NOT NULL,
    fingerprint VARCHAR NOT NULL,
    saved_at   TIMESTAMP NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (segment_id, version)
);
CREATE TABLE IF NOT EXISTS static_members (
    segment_id VARCHAR NOT NULL,
    profile_id VARCHAR NOT NULL,
    PRIMARY KEY (segment_id, profile_id)
);
CREATE TABLE IF NOT EXISTS memberships (
    segment_id   VARCHAR NOT NULL,
    profile_id   VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    evaluated_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    segment_id   VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    evaluated_at TIMESTAMP NOT NULL,
    as_of        TIMESTAMP NOT NULL,
    size         BIGINT NOT NULL
);
"""
"""Semantics of the tables above:

* ``events.profile_id``: the resolved profile (its user id when one is known,
  otherwise its anonymous id); rewritten when identities merge.
* ``traits``: one row per (message, trait key) from identify calls (and
  ``context.traits`` of other calls); ``kind`` is number|string|bool|null|json
  and exactly the matching value column is set. The value as of ``t`` is the
  row with the greatest (timestamp, message_id) at or before ``t``; kind
  ``null`` means the trait was cleared.
* ``identities``: kind ``user`` or ``anonymous`` -> current profile id.
* ``profiles``: the universe: every known profile id.
"""
