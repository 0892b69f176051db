"""The edge process: HTTP on the public port in front of the core process.

``segflow serve`` splits the server in two processes so that they use both cores.
The core owns DuckDB, the live evaluator and the whole API; it is one writer and,
since DuckDB's Python client takes the GIL between a query's tasks, about one core.
The edge (``segflow.edge.app``) takes the HTTP work off it: it reads Segment
ingestion requests and hands their bodies to the core over a Unix socket
(``segflow.api.wire``), answers ``GET /v1/profiles/{id}/segments`` from its own
copy of the look-up index, which the core keeps current, and passes every other
request through to the core's HTTP server on a second Unix socket.
"""
