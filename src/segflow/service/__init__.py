"""The service layer: the one handle shells (CLI, API, server) hold.

``handle`` opens the store and wires registry, change log and profile store;
``ingest`` stores what ingestion queued, one group commit at a time;
``live`` keeps memberships current; ``segments`` previews, diffs, pages and exports;
``profiles`` reads and erases one customer; ``destinations`` sends changes and syncs
to destinations (``sinks``: each type's sending; ``delivery``: signatures and targets);
``scores`` refreshes and reads value scores. None of them writes SQL text.
"""
