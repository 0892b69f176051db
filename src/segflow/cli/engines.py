"""Other batch engines: ``engine load`` copies the store to one, ``engine attach``
reads a Segment warehouse in place (docs/engines.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from segflow.cli.common import DEFAULT_DB, DbOption, console, opened, print_table
from segflow.service.engines import EngineUnavailable, attach_warehouse

app = typer.Typer(no_args_is_help=True, help="Batch engines other than the --db file.")


@app.command()
def load(
    url: Annotated[
        str,
        typer.Argument(
            help="The engine's URL, e.g. postgresql://user@host:port/database"
            " (schema: ?options=-csearch_path%3Dname), chdb:///absolute/path/to/dir,"
            " spark://local[N]/absolute/path/to/dir (Spark Connect: sc://host:port/...)"
            " or duckdb:///absolute/path/to/file.duckdb."
        ),
    ],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Copy the store's events, traits, identities and profiles to an engine, replacing
    the tables it held, so that `eval` and `members` can run there (--engine)."""
    with opened(db) as sf:
        report = sf.load_engine(url)
    table = Table(title=f"Copied to {report.engine}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in report.rows.items():
        table.add_row(name, f"{n:,}")
    print_table(table)
    if report.partitions:
        console.print(f"events in {report.partitions} monthly partitions")


@app.command()
def attach(
    url: Annotated[
        str,
        typer.Argument(
            help="Where the views go: postgresql://user@host:port/database"
            " (schema: ?options=-csearch_path%3Dname; not the Segment schema itself),"
            " or spark://local[N]/absolute/path/to/dir (Spark Connect: sc://host:port/...)."
        ),
    ],
    segment_schema: Annotated[
        str,
        typer.Option(
            "--segment-schema",
            help="The schema Segment's warehouse loader writes the source into (on"
            " Spark: the directory of its Parquet tables).",
        ),
    ],
) -> None:
    """Read a Segment warehouse schema in place: create views over its tracks,
    per-event, identifies, pages and screens tables (replacing an earlier attach), so
    that `eval` and `members` can run there (--engine); no event is copied."""
    try:
        report = attach_warehouse(url, segment_schema)
    except EngineUnavailable as e:
        console.print(f"[red]{escape(str(e))}[/red]", highlight=False)
        raise typer.Exit(2) from None
    table = Table(title=f"Segment schema {report.source} attached in {report.target}")
    table.add_column("read")
    table.add_column("count", justify="right")
    table.add_row("per-event tables", f"{len(report.event_tables):,}")
    table.add_row(
        "other call tables", ", ".join(report.call_tables) if report.call_tables else "none"
    )
    table.add_row("typed field paths", f"{report.fields:,}")
    table.add_row("trait keys", f"{report.trait_keys:,}")
    print_table(table)
    if report.skipped:
        console.print(
            f"{len(report.skipped):,} columns not read (not a type Segment makes, or a"
            f" name too long for a field path): {escape(', '.join(report.skipped))}",
            highlight=False,
        )
