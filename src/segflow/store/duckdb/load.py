"""What the stagers, the field typing and the store's commit share about one load: the
temporary tables rows are staged in, the core columns and what the load will change
(``Load``); what it stored is a ``store.records.history.StoredEvents``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import pyarrow as pa

ROOTS: Final = ("properties", "context", "traits")
"""The message objects whose leaves are the dynamic fields."""

STAGE: Final = "_sf_stage"
"""Every staged row, valid or not."""
VALID: Final = "_sf_valid"
"""The staged rows that passed validation."""
NEW: Final = "_sf_new"
"""The valid rows not stored yet (and first of their message id in the load)."""
TRAIT_STAGE: Final = "_sf_tstage"
"""The trait rows of the new rows (``Fields.traits``)."""
CORE: Final = (
    ("message_id", "VARCHAR", pa.string()),
    ("type", "VARCHAR", pa.string()),
    ("event", "VARCHAR", pa.string()),
    ("user_id", "VARCHAR", pa.string()),
    ("anonymous_id", "VARCHAR", pa.string()),
    ("previous_id", "VARCHAR", pa.string()),
    ("group_id", "VARCHAR", pa.string()),
    ("timestamp", "TIMESTAMP", pa.timestamp("us")),
    ("received_at", "TIMESTAMP", pa.timestamp("us")),
    ("sent_at", "TIMESTAMP", pa.timestamp("us")),
)
"""(column, DuckDB type, Arrow type) of the core fields, staged as columns of their own."""


@dataclass
class Load:
    """What one load will change, applied by ``DuckDBStore.commit_load``."""

    new_fields: dict[str, str] = field(default_factory=dict)
    overflow: set[str] = field(default_factory=set)
    select: dict[str, str] = field(default_factory=dict)
    """events column -> SQL over the staged row ``s`` (default: the stage column)."""
    source: str = NEW
    """The relation the staged rows are read from (the stage plus extracted leaves)."""
    has_traits: bool = True
    """Whether the staged rows can hold trait writes (False: no trait rows to insert)."""
    repeats: list[int] | None = None
    """Lines repeating the message id of an earlier line of the load, when the stager
    knew every id (in-memory messages); None: found in SQL."""
    names: set[str] | None = None
    """The load's event names, when the stager knew them; None: read from the stage."""
    stage_columns: list[str] | None = None
    """The staging table's columns, when the stager knew them."""
