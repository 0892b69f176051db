"""``segflow scores ...``: value scores and predictions, and segments proposed from
clusters of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from segflow.cli.common import (
    DEFAULT_DB,
    AtOption,
    DbOption,
    console,
    instant,
    opened,
    out,
    print_table,
)

app = typer.Typer(no_args_is_help=True, help="Value scores and predictions as traits.")


@app.command("refresh")
def scores_refresh(
    at: AtOption = None,
    classifier: Annotated[
        bool, typer.Option("--classifier/--no-classifier", help="Train the churn classifier.")
    ] = True,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Recompute RFM, engagement, tiers, lifecycle, BG/NBD + Gamma-Gamma CLV and churn."""
    from segflow.service.scores import refresh_scores
    from segflow.traits.refresh import ScoresConfig

    with opened(db) as sf:
        report = refresh_scores(sf, instant(at), ScoresConfig(classifier=classifier))
    out.print_json(json.dumps(report.as_dict(), default=str))


@app.command("show")
def scores_show(
    profile: Annotated[str | None, typer.Argument(help="A profile id (default: summary).")] = None,
    at: AtOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """One profile's scores, or how many profiles fall in each group, stage and tier."""
    from segflow.service.scores import scores_for, scores_summary

    with opened(db) as sf:
        if profile is not None:
            out.print_json(json.dumps(scores_for(sf, profile, instant(at)), default=str))
            return
        summary = scores_summary(sf)
    if not summary:
        console.print("no scores yet: run `segflow scores refresh`")
        raise typer.Exit(1)
    for key, counts in summary.items():
        table = Table(title=key)
        table.add_column("value")
        table.add_column("profiles", justify="right")
        for value, n in counts.items():
            table.add_row(value, f"{n:,}")
        print_table(table)


@app.command("models")
def scores_models_cmd(db: DbOption = DEFAULT_DB) -> None:
    """Model parameters and fit quality of the latest refresh (JSON)."""
    from segflow.service.scores import scores_models

    with opened(db) as sf:
        run = scores_models(sf)
    if run is None:
        console.print("no scores yet: run `segflow scores refresh`")
        raise typer.Exit(1)
    keys = ("as_of", "computed_at", "customers", "bgnbd", "gamma_gamma", "classifier")
    out.print_json(json.dumps({k: run.get(k) for k in (*keys, "classifier_note", "config")}))


@app.command("discover")
def scores_discover(
    k: Annotated[int, typer.Option("--k", help="Number of clusters.")] = 5,
    depth: Annotated[int, typer.Option(help="Depth of the rule trees.")] = 3,
    at: AtOption = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Write the proposed segments to this YAML file.")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Cluster customers on their scores and propose each cluster as a segment."""
    import yaml

    from segflow.service.scores import discover_segments

    with opened(db) as sf:
        proposals = discover_segments(sf, k=k, depth=depth, at=instant(at))
    table = Table(title="discovered segments")
    for col in ("segment", "cluster size", "rule size", "precision", "recall", "description"):
        table.add_column(col)
    for p in proposals:
        table.add_row(
            p.segment["id"], f"{p.size:,}", f"{p.rule_size:,}", f"{p.precision:.3f}",
            f"{p.recall:.3f}", p.segment["description"],
        )  # fmt: skip
    print_table(table)
    docs = [p.segment for p in proposals]
    if output is not None:
        output.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        console.print(f"wrote {len(docs)} segments to {output}")
    else:
        out.print(yaml.safe_dump_all(docs, sort_keys=False))
