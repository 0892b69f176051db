"""The ``segflow`` command: a thin Typer + Rich shell over the service."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from segflow.model.definition import parse_instant
from segflow.model.errors import DefinitionError
from segflow.service import Evaluation, Segflow

app = typer.Typer(no_args_is_help=True, help="segflow: real-time customer segmentation.")
segments_app = typer.Typer(no_args_is_help=True, help="Define and inspect segments.")
app.add_typer(segments_app, name="segments")
console = Console(stderr=True)
out = Console()

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="SEGFLOW_DB", help="DuckDB file holding events and segments."),
]
AtOption = Annotated[
    str | None,
    typer.Option("--at", help="Evaluate as of this ISO 8601 instant (default: now, UTC)."),
]
DEFAULT_DB = Path("segflow.duckdb")
LIBRARY = Path(__file__).parent / "demo" / "segments"


def _at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--at") from None


@contextmanager
def _service(db: Path) -> Iterator[Segflow]:
    """Open the store and turn known errors into clear messages and exit code 2."""
    sf = Segflow(db)
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
def _progress(label: str) -> Iterator[Any]:
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


def _sizes_table(sf: Segflow, evaluation: Evaluation) -> Table:
    """Segment sizes and their share of every known profile."""
    names = {s.id: s.name for s in sf.segments().values()}
    universe = sf.store.count_profiles()
    sizes = evaluation.sizes
    table = Table(title=f"Segments as of {evaluation.at.isoformat(timespec='seconds')}Z")
    table.add_column("segment")
    table.add_column("name")
    table.add_column("members", justify="right")
    table.add_column("share", justify="right")
    for sid, n in sorted(sizes.items()):
        share = f"{100 * n / universe:.1f}%" if universe else "-"
        table.add_row(sid, names.get(sid, ""), f"{n:,}", share)
    return table


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help="JSON Lines, CSV or Parquet event files.")],
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Report bad lines and load the rest.")
    ] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Load events (idempotent by message_id; a bad file loads nothing unless --skip-invalid)."""
    from segflow.store.duckdb_store import IngestError

    with _service(db) as sf, _progress("ingesting") as update:
        try:
            reports = sf.ingest(files, skip_invalid=skip_invalid, progress=update)
        except IngestError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(2) from None
    for r in reports:
        console.print(str(r))


@segments_app.command("apply")
def segments_apply(
    path: Annotated[Path, typer.Argument(help="A YAML/JSON file or a directory of them.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Validate and save segment definitions (a new version when the definition changed)."""
    with _service(db) as sf:
        for seg, status in sf.apply(path):
            out.print(f"{status:9} {seg.id} (v{seg.version})")


@segments_app.command("validate")
def segments_validate(
    path: Annotated[Path, typer.Argument(help="A YAML/JSON file or a directory of them.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Check definitions (syntax, types, references, cycles) without saving."""
    with _service(db) as sf:
        segs = sf.validate(path)
    out.print(f"[green]ok[/green]: {len(segs)} segment(s) valid")


@segments_app.command("list")
def segments_list(db: DbOption = DEFAULT_DB) -> None:
    """List saved segments."""
    with _service(db) as sf:
        segs = sf.segments()
    table = Table()
    for c in ("id", "name", "mode", "version", "tags"):
        table.add_column(c)
    for s in segs.values():
        table.add_row(s.id, s.name, s.mode, str(s.version), ", ".join(s.tags))
    out.print(table)


@segments_app.command("show")
def segments_show(segment_id: str, db: DbOption = DEFAULT_DB) -> None:
    """Print a segment's canonical definition (YAML)."""
    import yaml

    with _service(db) as sf:
        seg = sf.segment(segment_id)
    out.print(yaml.safe_dump(seg.to_dict(), sort_keys=False, allow_unicode=True), end="")


@segments_app.command("delete")
def segments_delete(
    segment_id: str,
    force: Annotated[bool, typer.Option(help="Delete even a protected segment.")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete a segment (protected ones and ones other segments use refuse)."""
    with _service(db) as sf:
        sf.delete(segment_id, force=force)
    out.print(f"deleted {segment_id}")


@segments_app.command("import")
def segments_import(
    segment_id: str,
    csv_file: Annotated[
        Path, typer.Argument(help="CSV with a profile_id column (or ids in the first column).")
    ],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create or replace a static segment from a list of profile ids."""
    with _service(db) as sf:
        n = sf.import_static(segment_id, csv_file, name)
    out.print(f"static segment {segment_id}: {n:,} members")


@app.command()
def schedule(
    once: Annotated[bool, typer.Option("--once", help="Run what is due now and exit.")] = False,
    every: Annotated[float, typer.Option(help="Seconds between checks when looping.")] = 30.0,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Re-evaluate scheduled segments when their cron schedule fires."""
    while True:
        with _service(db) as sf:
            evaluation = sf.run_schedule()
        if evaluation is not None:
            for sid, n in sorted(evaluation.sizes.items()):
                out.print(f"{evaluation.at.isoformat(timespec='seconds')}Z {sid}: {n:,} members")
        if once:
            return
        time.sleep(every)


@app.command("eval")
def eval_(
    at: AtOption = None,
    segment: Annotated[
        list[str] | None, typer.Option("--segment", help="Only this segment (repeatable).")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Evaluate every segment (or the chosen ones) in one plan and store the memberships."""
    with _service(db) as sf:
        evaluation, _ = sf.evaluate(_at(at), segment)
        out.print(_sizes_table(sf, evaluation))
    console.print(f"evaluated {len(evaluation.sizes)} segments in {evaluation.seconds:.2f}s")


@app.command()
def compact(db: DbOption = DEFAULT_DB) -> None:
    """Re-cluster stored events by event name so batch evaluation reads only what it needs."""
    with _service(db) as sf:
        started = time.perf_counter()
        n = sf.store.compact()
    console.print(f"compacted {n:,} events in {time.perf_counter() - started:.1f}s")


@app.command()
def members(
    segment_id: str,
    at: AtOption = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Print the members of a segment as of an instant, one profile id per row."""
    if fmt not in ("csv", "json"):
        raise typer.BadParameter("use csv or json", param_hint="--format")
    with _service(db) as sf:
        ids = sf.members(segment_id, _at(at))
    if fmt == "json":
        sys.stdout.write(json.dumps(ids) + "\n")
    else:
        sys.stdout.write("profile_id\n" + "".join(f"{i}\n" for i in ids))


@app.command()
def export(
    segment_id: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="Target .csv or .parquet file.")],
    at: AtOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Export a segment's members to CSV or Parquet."""
    with _service(db) as sf:
        n = sf.export(segment_id, output, _at(at))
    console.print(f"wrote {n:,} members to {output}")


@app.command()
def demo(
    customers: Annotated[int, typer.Option(help="How many customers to generate.")] = 5_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same shop).")] = 42,
    days: Annotated[int, typer.Option(help="Days of history.")] = 365,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve after loading.")] = True,
    data_dir: Annotated[Path, typer.Option(help="Where generated files go.")] = Path("demo-data"),
    db: Annotated[Path, typer.Option("--db", envvar="SEGFLOW_DB")] = Path("demo-data/demo.duckdb"),
) -> None:
    """Generate a realistic shop, load it, apply the segment library, evaluate, print sizes."""
    from segflow.demo.generator import generate_shop

    end = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    with _progress("generating shop") as update:
        summary = generate_shop(
            data_dir, customers=customers, seed=seed, end=end, days=days, progress=update
        )
    console.print(f"generated {summary.events:,} events for {customers:,} customers")
    with _service(db) as sf:
        with _progress("loading events") as update:
            sf.ingest(list(summary.paths), progress=update)
        sf.apply(LIBRARY)
        evaluation, _ = sf.evaluate(end)
        out.print(_sizes_table(sf, evaluation))
    console.print(
        f"evaluated {len(evaluation.sizes)} segments in {evaluation.seconds:.2f}s; db: {db}"
    )
    if serve:
        console.print(
            "The HTTP server and UI arrive with the server issue; explore with "
            f"`segflow --help` (e.g. segflow members cart_abandoners_24h --db {db})."
        )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
