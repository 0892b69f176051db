"""Storage behind narrow protocols; DuckDB is the embedded default."""
