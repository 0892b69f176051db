"""Batch evaluation and what it stores: ``eval``, ``schedule``, ``compact`` (clustering
the store for it), ``members`` and ``export``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from segflow.cli.common import (
    DEFAULT_DB,
    AtOption,
    DbOption,
    EngineOption,
    console,
    instant,
    opened,
    out,
    print_table,
)
from segflow.service.handle import Evaluation, Segflow
from segflow.service.segments import export_to

app = typer.Typer()


def sizes_table(sf: Segflow, evaluation: Evaluation) -> Table:
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
def schedule(
    once: Annotated[bool, typer.Option("--once", help="Run what is due now and exit.")] = False,
    every: Annotated[float, typer.Option(help="Seconds between checks when looping.")] = 30.0,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Re-evaluate scheduled segments when their cron schedule fires."""

    while True:
        with opened(db) as sf:
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
    engine: EngineOption = None,
) -> None:
    """Evaluate every segment (or the chosen ones) in one plan and store the memberships
    (with --engine: evaluate there and only print the sizes)."""
    with opened(db) as sf:
        if engine is not None:
            sf.use_engine(engine)
        evaluation, _ = sf.evaluate(instant(at), segment, store=engine is None)
        print_table(sizes_table(sf, evaluation))
    console.print(f"evaluated {len(evaluation.sizes)} segments in {evaluation.seconds:.2f}s")


@app.command()
def compact(db: DbOption = DEFAULT_DB) -> None:
    """Re-cluster stored events by event name and traits by key so batch evaluation reads
    only what it needs."""
    with opened(db) as sf:
        started = time.perf_counter()
        n = sf.store.compact()
    console.print(
        f"compacted {n['events']:,} events and {n['traits']:,} trait rows"
        f" in {time.perf_counter() - started:.1f}s"
    )


@app.command()
def members(
    segment_id: str,
    at: AtOption = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    db: DbOption = DEFAULT_DB,
    engine: EngineOption = None,
) -> None:
    """Print the members of a segment as of an instant, one profile id per row."""
    if fmt not in ("csv", "json"):
        raise typer.BadParameter("use csv or json", param_hint="--format")
    with opened(db) as sf:
        if engine is not None:
            sf.use_engine(engine)
        ids = sf.members(segment_id, instant(at))
    if fmt == "json":
        sys.stdout.write(json.dumps(ids) + "\n")
    else:
        sys.stdout.write("profile_id\n" + "".join(f"{i}\n" for i in ids))


@app.command()
def export(
    segment_id: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="Target .csv or .parquet file.")],
    at: AtOption = None,
    include_held_out: Annotated[
        bool,
        typer.Option(
            "--include-held-out",
            help="List the segment's holdout too, marked in a held_out column.",
        ),
    ] = False,
    db: DbOption = DEFAULT_DB,
    engine: EngineOption = None,
) -> None:
    """Export a segment's members with their current traits (one column per trait) to
    CSV or Parquet; members in the segment's holdout are left out unless asked for
    (with --engine: the members evaluated there, their traits from the store)."""
    with opened(db) as sf:
        if engine is not None:
            sf.use_engine(engine)
        n = export_to(sf, None, segment_id, output, instant(at), include_held_out=include_held_out)
    console.print(f"wrote {n:,} members to {output}")
