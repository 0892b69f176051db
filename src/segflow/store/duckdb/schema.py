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

from typing import TYPE_CHECKING, Final

from segflow.store.duckdb.changes import CHANGES_DDL
from segflow.store.duckdb.loaded_files import LOADED_FILES_DDL

if TYPE_CHECKING:
    pass

FIELD_TYPES: Final = ("DOUBLE", "BOOLEAN", "VARCHAR")

CORE_EVENT_COLUMNS: Final = (
    "message_id",
    "seq",
    "type",
    "event",
    "user_id",
    "anonymous_id",
    "previous_id",
    "group_id",
    "profile_id",
    "timestamp",
    "received_at",
    "sent_at",
    "extra",
)

DDL: Final = (
    CHANGES_DDL
    + LOADED_FILES_DDL
    + """
CREATE SEQUENCE IF NOT EXISTS event_seq;
CREATE TABLE IF NOT EXISTS seq_marks (
    name  VARCHAR PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    message_id   VARCHAR NOT NULL,
    seq          BIGINT NOT NULL,
    type         VARCHAR NOT NULL,
    event        VARCHAR,
    user_id      VARCHAR,
    anonymous_id VARCHAR,
    previous_id  VARCHAR,
    group_id     VARCHAR,
    profile_id   VARCHAR NOT NULL,
    "timestamp"  TIMESTAMP NOT NULL,
    received_at  TIMESTAMP,
    sent_at      TIMESTAMP,
    extra        JSON
);
CREATE TABLE IF NOT EXISTS field_catalog (
    path     VARCHAR PRIMARY KEY,
    type     VARCHAR NOT NULL,
    overflow BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE SEQUENCE IF NOT EXISTS trait_wseq;
CREATE TABLE IF NOT EXISTS traits (
    profile_id VARCHAR NOT NULL,
    key        VARCHAR NOT NULL,
    "timestamp" TIMESTAMP NOT NULL,
    message_id VARCHAR NOT NULL,
    kind       VARCHAR NOT NULL,
    num        DOUBLE,
    str        VARCHAR,
    bool       BOOLEAN,
    json       JSON,
    valid_to   TIMESTAMP,
    linked     BOOLEAN NOT NULL DEFAULT FALSE,
    wseq       BIGINT DEFAULT nextval('trait_wseq')
);
ALTER TABLE traits ADD COLUMN IF NOT EXISTS wseq BIGINT DEFAULT nextval('trait_wseq');
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
CREATE TABLE IF NOT EXISTS event_names (
    name VARCHAR PRIMARY KEY,
    code INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS merges (
    from_profile VARCHAR NOT NULL,
    into_profile VARCHAR NOT NULL,
    "at"         TIMESTAMP NOT NULL
);
CREATE OR REPLACE MACRO traits_as_of(t) AS TABLE
    SELECT profile_id, key, kind, num, str, bool, json, "timestamp", message_id,
           CASE kind WHEN 'number' THEN to_json(num) WHEN 'string' THEN to_json(str)
                     WHEN 'bool' THEN to_json(bool) WHEN 'json' THEN json END AS value
    FROM traits
    WHERE "timestamp" <= t
    QUALIFY row_number() OVER (PARTITION BY profile_id, key
                               ORDER BY "timestamp" DESC, message_id DESC) = 1
        AND kind <> 'null';
CREATE OR REPLACE VIEW current_traits AS
    SELECT * FROM traits_as_of(TIMESTAMP '294247-01-01 00:00:00');
CREATE TABLE IF NOT EXISTS segment_definitions (
    segment_id VARCHAR NOT NULL,
    version    INTEGER NOT NULL,
    definition JSON NOT NULL,
    fingerprint VARCHAR NOT NULL,
    saved_at   TIMESTAMP NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (segment_id, version)
);
CREATE TABLE IF NOT EXISTS group_definitions (
    group_id   VARCHAR NOT NULL,
    version    INTEGER NOT NULL,
    definition JSON NOT NULL,
    fingerprint VARCHAR NOT NULL,
    saved_at   TIMESTAMP NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (group_id, version)
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
)
LINK_TRAITS: Final = """
UPDATE traits SET valid_to = n.next_ts, linked = TRUE
FROM (
    SELECT t.rowid AS rid,
           lead(t."timestamp") OVER (PARTITION BY t.profile_id, t.key
                                     ORDER BY t."timestamp", t.message_id) AS next_ts
    FROM traits t
    SEMI JOIN (SELECT DISTINCT profile_id, key FROM traits WHERE NOT linked) d
        ON t.profile_id = d.profile_id AND t.key = d.key
) n
WHERE traits.rowid = n.rid
"""
"""Give every trait write the instant the next write of the same (profile, key)
replaces it (``valid_to``; NULL while it is the latest), so "the value as of t" is a
plain filter ``timestamp <= t AND (valid_to IS NULL OR valid_to > t)`` instead of a
grouped ARG_MAX.  Only (profile, key) pairs with an unlinked row are recomputed: any
writer may insert rows (``linked`` defaults to FALSE) or move them between profiles
(setting ``linked = FALSE``) and the next link makes them exact again."""

"""Semantics of the tables above:

* ``events.profile_id``: the resolved profile (its user id when one is known,
  otherwise its anonymous id); rewritten when identities merge.
* ``traits``: one row per (message, trait key) from identify calls (and
  ``context.traits`` of other calls); ``kind`` is number|string|bool|null|json
  and exactly the matching value column is set. The value as of ``t`` is the
  row with the greatest (timestamp, message_id) at or before ``t``; kind
  ``null`` means the trait was cleared.  ``wseq`` numbers the writes in insertion
  order (``trait_wseq``; every writer gets it by default, merges and links keep it):
  the live evaluator's watermark for writes that belong to no event (value scores,
  ``message_id`` ``scores/<computed_at>``).
* ``identities``: kind ``user`` or ``anonymous`` -> current profile id;
  ``first_seen`` is the earliest event timestamp mentioning it.  Kind
  ``previous`` records the previous ids of alias calls: such an id links to the
  user or anonymous id with the same value, whenever that one arrives.  A
  profile's id is its user id seen first (then the smallest), else its earliest
  anonymous id: a function of the messages, not of their arrival order.
* ``profiles``: the universe: every known profile id, with the earliest and latest
  event timestamp of its (merged) events.
* ``events.previous_id`` (alias), ``group_id`` (group), ``sent_at``: Segment
  fields kept as they came.  ``seq`` is unique and grows with ingestion order
  (stored max + the line/row number in the loaded file; gaps are normal).
* Dotted columns: a path whose name differs from an existing column only in case
  (DuckDB names are case-insensitive), or that contains NUL, gets no column: its
  catalog type is ``JSON`` and its values live in ``extra`` only.  A path whose
  first value was an array is also type ``JSON`` (every value in ``extra``);
  ``overflow`` is set once such a path also sees a scalar.  Null values are not
  stored as event fields (a null property is an absent one).
* ``event_names`` and ``events.event_code``: the store numbers event names
  (1, 2, ... in order of first ingestion) and keeps each event's code, so the
  batch evaluator can compare integers instead of strings.  ``event_code`` is
  added by ``DuckDBStore`` (not by this DDL: a table without it is still valid,
  and the compiler then compares names); when present, every row with an
  ``event`` has its code.
* ``profile_no`` of ``profiles``, ``events`` and ``traits``: a dense INTEGER per
  profile that every row of the profile carries, so the batch evaluator groups and
  joins on integers.  Added by ``DuckDBStore`` (``store.duckdb.numbers``), not by this DDL,
  and then ``NOT NULL``; a row's number is its profile's, and merges rewrite it with
  ``profile_id``.
* ``merges``: profile ``from_profile`` was merged into ``into_profile`` at ``at``
  (wall-clock time of the load); its events, traits and identities were rewritten.
  Follow chains (a -> b, later b -> c) to find where a profile went.
* ``traits_as_of(t)`` (table macro) and ``current_traits`` (view): one row per
  (profile, key) with the value as of ``t`` / now; cleared traits are absent;
  ``value`` is the value as JSON whatever its kind.
"""
