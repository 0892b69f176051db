"""The ``segflow`` command: a thin Typer + Rich shell over the service, one module per
command group (``common`` holds what they share)."""

from __future__ import annotations

import typer

from segflow.cli import (
    analytics,
    demo,
    destinations,
    engines,
    evaluate,
    groups,
    ingest,
    keys,
    live,
    scores,
    segments,
    serve,
)

app = typer.Typer(no_args_is_help=True, help="segflow: real-time customer segmentation.")
for commands in (ingest.app, evaluate.app, demo.app, serve.app, live.app):
    app.add_typer(commands)  # no name: the commands sit at the top level
app.add_typer(segments.app, name="segments")
app.add_typer(groups.app, name="groups")
app.add_typer(keys.app, name="keys")
app.add_typer(scores.app, name="scores")
app.add_typer(analytics.app, name="analytics")
app.add_typer(destinations.app, name="destinations")
app.add_typer(engines.app, name="engine")
