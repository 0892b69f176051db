"""Quoting for the SQL text the DuckDB modules build.

User text never becomes SQL: column names are quoted identifiers (``quote_ident``),
values are parameters, and the few places DuckDB takes no parameters (file paths, JSON
keys inside generated expressions) use ``quote_str``.
"""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """A SQL identifier for any text (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_str(text: str) -> str:
    """A SQL string literal, for the places DuckDB accepts no parameters."""
    return "'" + text.replace("'", "''") + "'"
