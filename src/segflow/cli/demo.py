"""``segflow demo``: a generated shop, loaded, scored, segmented, evaluated and served."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from segflow.cli.common import DEFAULT_DB, DbOption, console, opened, print_table, progress
from segflow.cli.evaluate import sizes_table
from segflow.cli.serve import serve_store
from segflow.service.handle import Segflow, remove_store
from segflow.service.overview import backfill_daily_sizes

HISTORY_UP_TO = 20_000
"""Shops of up to this many customers get 30 days of daily segment sizes (the size
history the UI draws) from one batch evaluation per day."""

app = typer.Typer()


@app.command()
def demo(
    customers: Annotated[int, typer.Option(help="How many customers to generate.")] = 5_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same shop).")] = 42,
    days: Annotated[int, typer.Option(help="Days of history.")] = 365,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve after loading.")] = True,
    data_dir: Annotated[Path, typer.Option(help="Where generated files go.")] = Path("demo-data"),
    db: DbOption = DEFAULT_DB,
    port: Annotated[int, typer.Option(help="Port to serve on (with --serve).")] = 8000,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite a store not made by the demo.")
    ] = False,
) -> None:
    """Generate a realistic shop, load it, apply the segment library, evaluate, print
    sizes, then serve it (API + UI) with a fresh admin/write key pair."""
    from segflow.demo import SEGMENTS_DIR
    from segflow.demo.generator import generate_shop

    end = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    if db.exists() and not replace and not _made_by_demo(db):
        console.print(
            f"[red]{escape(str(db))} holds a store not made by `segflow demo`[/red]:"
            " choose another --db, or pass --replace to overwrite it",
            highlight=False,
        )
        raise typer.Exit(2)
    data_dir.mkdir(parents=True, exist_ok=True)
    remove_store(db)
    with progress("generating shop") as update:
        summary = generate_shop(
            data_dir, customers=customers, seed=seed, end=end, days=days, progress=update
        )
    console.print(f"generated {summary.events:,} events for {customers:,} customers")
    with opened(db, create=True) as sf:
        sf.store.mark_demo()
        with progress("loading events") as update:
            sf.ingest(list(summary.paths), progress=update)
        _refresh_scores(sf, end)
        sf.apply(SEGMENTS_DIR)
        evaluation, _ = sf.evaluate(end)
        print_table(sizes_table(sf, evaluation))
        if customers <= HISTORY_UP_TO:  # one batch evaluation a day: quick at this size
            with progress("sizes of the last 30 days") as update:
                backfill_daily_sizes(sf, end, progress=update)
    console.print(
        f"evaluated {len(evaluation.sizes)} segments in {evaluation.seconds:.2f}s; db: {db}"
    )
    if serve:
        serve_store(db, "127.0.0.1", port, demo_keys=True)


def _made_by_demo(db: Path) -> bool:
    with opened(db) as sf:
        return sf.store.made_by_demo()


def _refresh_scores(sf: Segflow, end: datetime) -> None:
    from segflow.service.scores import refresh_scores

    report = refresh_scores(sf, end)
    line = (
        f"scored {report.customers:,} customers in {report.seconds['total']:.2f}s"
        if report.classifier is None
        else f"scored {report.customers:,} customers in {report.seconds['total']:.2f}s; "
        f"churn classifier AUC {report.classifier.auc:.3f} "
        f"(P(alive) alone {report.classifier.baseline_auc_p_alive:.3f})"
    )
    console.print(line)
