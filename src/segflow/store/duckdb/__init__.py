"""The embedded DuckDB engine: every SQL statement and DDL segflow runs on a DuckDB file."""
