"""Spark SQL behind the batch evaluator: Parquet files copied from a DuckDB store, read
by a Spark session (local mode) as the tables of the batch query."""
