"""segflow's expression nodes and the SQL dialects that spell them.

The batch compiler builds one typed sqlglot tree per plan.  Where sqlglot has a node
for what the plan needs (``exp.CountIf``, ``exp.StartsWith``, ``exp.EndsWith``, ...)
the tree holds that node; what sqlglot lacks is a small node defined here (the bucket
hash, the typed reads of the overflow JSON, the ISO-8601 timestamp reader, the most
frequent value, the value of the latest row, a step of a sequence's chain), and
wherever engines share no construct (structs, ASOF joins) the tree says what it needs
with such a node rather than one engine's construct.  Each engine is a subclass of
sqlglot's dialect whose generator ``TRANSFORMS`` spell only what differs, as sqlglot's
own dialects do.

A node an engine cannot compute with the same value raises ``UnsupportedNode`` naming
the node and the dialect; nothing is skipped or approximated.  Engines with no class
here are refused by ``dialect_class``.

The classes have names of their own (``SegflowDuckDB``, ``SegflowPostgres``,
``SegflowClickHouse``, ``SegflowSpark``), so sqlglot's ``"duckdb"``, ``"postgres"``,
``"clickhouse"`` and ``"spark"`` stay sqlglot's: a tree holding segflow's nodes is
rendered with the compiler's ``dialect``.  The parsers and every spelling of sqlglot's
own nodes are inherited unchanged.
"""

from __future__ import annotations

from sqlglot.dialects.dialect import Dialect

from segflow.batch.dialects.clickhouse import SegflowClickHouse
from segflow.batch.dialects.duckdb import SegflowDuckDB
from segflow.batch.dialects.nodes import (
    NODES,
    AsJsonText,
    BucketHash,
    ChainStep,
    JsonBoolean,
    JsonExists,
    JsonField,
    JsonNumber,
    JsonString,
    JsonText,
    Latest,
    ParseTimestamp,
    TopValue,
    Transform,
    UnsupportedNode,
    transforms,
)
from segflow.batch.dialects.postgres import PARSE_TIMESTAMP_FUNCTION, SegflowPostgres
from segflow.batch.dialects.spark import SegflowSpark

__all__ = [
    "DIALECTS",
    "NODES",
    "PARSE_TIMESTAMP_FUNCTION",
    "AsJsonText",
    "BucketHash",
    "ChainStep",
    "JsonBoolean",
    "JsonExists",
    "JsonField",
    "JsonNumber",
    "JsonString",
    "JsonText",
    "Latest",
    "ParseTimestamp",
    "SegflowClickHouse",
    "SegflowDuckDB",
    "SegflowPostgres",
    "SegflowSpark",
    "TopValue",
    "Transform",
    "UnsupportedNode",
    "dialect_class",
    "transforms",
]

DIALECTS: dict[str, type[Dialect]] = {
    "duckdb": SegflowDuckDB,
    "postgres": SegflowPostgres,
    "clickhouse": SegflowClickHouse,
    "spark": SegflowSpark,
}


def dialect_class(name: str) -> type[Dialect]:
    """segflow's dialect class for an engine name; an engine it has none for is refused
    (sqlglot's own class would render segflow's nodes as unknown functions)."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(
            f"segflow's batch compiler has no dialect {name!r} (it has: {', '.join(DIALECTS)})"
        ) from None
