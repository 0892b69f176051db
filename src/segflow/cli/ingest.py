"""``segflow ingest``: load event files into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segflow.cli.common import DEFAULT_DB, DbOption, console, opened, progress
from segflow.model.events import IngestError

app = typer.Typer()


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help="JSON Lines, CSV or Parquet event files.")],
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Report bad lines and load the rest.")
    ] = False,
    again: Annotated[
        bool,
        typer.Option(
            "--again",
            help="Read files the store has loaded already (their events are dropped as"
            " duplicates by message_id).",
        ),
    ] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Load events: one transaction per file, idempotent by message_id; a bad file loads
    nothing unless --skip-invalid; files loaded already are skipped unread, so an
    interrupted load is resumed by running it again."""
    with opened(db, create=True) as sf, progress("ingesting (MB)") as update:
        try:
            reports = sf.ingest(files, skip_invalid=skip_invalid, progress=update, again=again)
        except IngestError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(2) from None
    for r in reports:
        console.print(str(r))
