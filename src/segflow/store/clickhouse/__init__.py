"""ClickHouse (embedded, through chDB) behind the batch evaluator: the tables it reads,
copied from a DuckDB store."""
