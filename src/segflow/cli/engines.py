"""Other batch engines: ``engine load`` copies the store to one (docs/engines.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from segflow.cli.common import DEFAULT_DB, DbOption, console, opened, print_table

app = typer.Typer(no_args_is_help=True, help="Batch engines other than the --db file.")


@app.command()
def load(
    url: Annotated[
        str,
        typer.Argument(
            help="The engine's URL, e.g. postgresql://user@host:port/database"
            " (schema: ?options=-csearch_path%3Dname) or chdb:///absolute/path/to/dir."
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
