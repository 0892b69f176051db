"""The service layer: the one handle shells (CLI, API, server) hold.

``handle`` opens the store and wires registry, change log and profile store;
``live`` keeps memberships current; ``segments`` previews, diffs, pages and exports;
``profiles`` reads and erases one customer; ``delivery`` sends webhooks with retries;
``scores`` refreshes and reads value scores. None of them writes SQL text.
"""
