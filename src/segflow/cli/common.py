"""What every command shares: the ``--db`` and ``--at`` options, the two consoles,
opening the service with known errors turned into one line and exit code 2, progress
bars and tables that never cut an id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from segflow.model.errors import DefinitionError
from segflow.model.time import parse_instant
from segflow.service.handle import Segflow, StoreHeld, StoreUnavailable, open_store

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
"""Ids are never folded across lines: plain lines soft-wrap, tables widen (print_table)."""

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="SEGFLOW_DB", help="DuckDB file holding events and segments."),
]
"""Every command's store (one default for all); only ``ingest``, ``demo`` and the
server's bootstrap (``keys create``, ``serve``) create a missing one."""
AtOption = Annotated[
    str | None,
    typer.Option("--at", help="Evaluate as of this ISO 8601 instant (default: now, UTC)."),
]
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        envvar="SEGFLOW_ENGINE",
        help="Evaluate on this engine instead of the --db file (read-only): a URL"
        " loaded by `segflow engine load`, e.g. postgresql://user@host:port/database.",
    ),
]
"""The batch engine of ``eval`` and ``members`` (docs/engines.md)."""
DEFAULT_DB = Path("segflow.duckdb")


def instant(value: str | None, hint: str = "--at") -> datetime | None:
    """An option's ISO 8601 instant (None when not given); a bad one is a usage error."""
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=hint) from None


def _open(db: Path, *, create: bool = False) -> Segflow:
    """Open the store, or exit 2 with one line: no store there (a mistyped ``--db``
    must not leave an empty store behind), or a running server holds it."""
    if not create and not db.exists():
        console.print(
            f"[red]no store at {escape(str(db))}[/red] (check --db / SEGFLOW_DB;"
            " `segflow ingest FILE --db PATH` or `segflow demo` creates one)",
            highlight=False,
        )
        raise typer.Exit(2)
    try:
        return open_store(db)
    except StoreHeld as e:
        pid = f" (pid {e.pid})" if e.pid else ""
        console.print(
            f"[red]{escape(str(db))} is held by another process{pid}, most likely a running"
            " `segflow serve`:[/red] reach the same data over the server's HTTP API"
            " (GET /v1/segments, /v1/segments/ID/members, ... with an admin key), or stop"
            " it first",
            highlight=False,
        )
        raise typer.Exit(2) from None
    except StoreUnavailable as e:
        console.print(f"[red]cannot open {escape(str(db))}:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None


@contextmanager
def opened(db: Path, *, create: bool = False) -> Iterator[Segflow]:
    """Open the store and turn known errors into clear messages and exit code 2."""
    sf = _open(db, create=create)
    try:
        yield sf
    except DefinitionError as e:
        console.print(f"[red]invalid definition[/red]{' in ' + e.source if e.source else ''}:")
        for p in e.problems:
            console.print(f"  [bold]{p.path or '(document)'}[/bold]: {p.message}")
        raise typer.Exit(2) from None
    except KeyError as e:
        console.print(f"[red]{e.args[0]}[/red]")
        raise typer.Exit(2) from None
    except (ValueError, OSError) as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    finally:
        sf.close()


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar on stderr; yields the ``(done, total)`` callback."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


def print_table(table: Table) -> None:
    """Print a table at least as wide as its widest row, so ids are never cut (a pipe
    or a narrow terminal would otherwise truncate them at its width)."""
    need = Measurement.get(out, out.options.update_width(1 << 16), table).maximum
    width = out.width
    out.width = max(width, need)
    try:
        out.print(table)
    finally:
        out.width = width
