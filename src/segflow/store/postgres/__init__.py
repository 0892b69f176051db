"""PostgreSQL behind the batch evaluator: the tables it reads, copied from a DuckDB store
(``load``), or views over a Segment warehouse schema read in place (``warehouse``)."""
