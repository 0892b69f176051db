"""``segflow serve``: the HTTP API, the UI, live evaluation and the scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segflow.cli.common import DEFAULT_DB, DbOption, console

app = typer.Typer()


def serve_store(
    db: Path,
    host: str,
    port: int,
    *,
    demo_keys: bool = False,
    scores_cron: str | None = "0 3 * * *",
    edge: bool = True,
) -> None:
    """Run the server on ``db`` (keys created first for the demo, shown once)."""
    from segflow.api.deps import Settings
    from segflow.model.errors import DefinitionError
    from segflow.server import make_context, supervise
    from segflow.service.consent import configured_unknown_consent
    from segflow.service.handle import StoreUnavailable

    try:
        settings = Settings(scores_cron=scores_cron)
    except ValueError as e:
        console.print(f"[red]--{e}[/red]".replace("scores_cron", "scores-cron", 1))
        raise typer.Exit(2) from None
    try:
        configured_unknown_consent()
    except DefinitionError as e:
        for p in e.problems:
            console.print(f"[red]{p.path}: {p.message}[/red]", markup=True)
        raise typer.Exit(2) from None
    try:
        ctx = make_context(db, settings=settings)
    except StoreUnavailable as e:  # most often: another process holds the file
        console.print(f"[red]cannot open {db}: {e}[/red]")
        raise typer.Exit(2) from None
    write: str | None = None
    if demo_keys:
        admin = ctx.key_store.create("admin", "demo admin").token
        write = ctx.key_store.create("write", "demo write").token
        console.print(f"admin key: [bold]{admin}[/bold]")
        console.print(f"write key: [bold]{write}[/bold]")
    elif not any(k.revoked_at is None for k in ctx.key_store.list()):
        console.print("no API keys yet: create one with `segflow keys create --kind admin`")
    url = f"http://{host}:{port}"
    console.print(f"serving {db} at [bold]{url}[/bold] (UI: {url}/, API docs: {url}/docs)")
    if write is not None:
        sample = '{"userId": "demo-user", "event": "Product Viewed"}'
        console.print(
            f"send an event: curl -u {write}: {url}/v1/track"
            f" -H 'Content-Type: application/json' -d '{sample}'",
            soft_wrap=True,
            markup=False,
        )
    ctx.app.close()  # the core, a child process restarted if it crashes, opens it again
    args = ["--db", str(db), "--host", host, "--port", str(port)]
    args += ["--no-scores"] if scores_cron is None else ["--scores-cron", scores_cron]
    args += [] if edge else ["--no-edge"]
    raise typer.Exit(supervise(args))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    scores_cron: Annotated[
        str, typer.Option(help="When to refresh the value scores (UTC cron).")
    ] = "0 3 * * *",
    no_scores: Annotated[
        bool, typer.Option("--no-scores", help="Never refresh the scores on a schedule.")
    ] = False,
    no_edge: Annotated[
        bool,
        typer.Option("--no-edge", help="One process: HTTP in the core, no edge process."),
    ] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Serve the HTTP API, the UI, live evaluation and the scheduler: the core process
    (store, evaluator, API) behind an edge process answering HTTP on the port."""
    serve_store(db, host, port, scores_cron=None if no_scores else scores_cron, edge=not no_edge)
