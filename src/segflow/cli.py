"""The ``segflow`` command: a thin Typer + Rich shell over the service."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

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

from segflow.model.definition import Segment
from segflow.model.errors import DefinitionError
from segflow.model.time import format_instant, parse_instant
from segflow.service.handle import Evaluation, Segflow

app = typer.Typer(no_args_is_help=True, help="segflow: real-time customer segmentation.")
segments_app = typer.Typer(no_args_is_help=True, help="Define and inspect segments.")
app.add_typer(segments_app, name="segments")
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
"""Ids are never folded across lines: plain lines soft-wrap, tables widen (_print_table)."""

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
DEFAULT_DB = Path("segflow.duckdb")
LIBRARY = Path(__file__).parent / "demo" / "segments"


def _at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--at") from None


def _open(db: Path, *, create: bool = False) -> Segflow:
    """Open the store, or exit 2 with one line: no store there (a mistyped ``--db``
    must not leave an empty store behind), or a running server holds it."""
    import duckdb

    if not create and not db.exists():
        console.print(
            f"[red]no store at {escape(str(db))}[/red] (check --db / SEGFLOW_DB;"
            " `segflow ingest FILE --db PATH` or `segflow demo` creates one)",
            highlight=False,
        )
        raise typer.Exit(2)
    try:
        return Segflow(db)
    except duckdb.IOException as e:
        if "lock" not in str(e).lower():
            console.print(f"[red]cannot open {escape(str(db))}:[/red] {escape(str(e))}")
            raise typer.Exit(2) from None
        holder = re.search(r"\(PID (\d+)\)", str(e))
        pid = f" (pid {holder.group(1)})" if holder else ""
        console.print(
            f"[red]{escape(str(db))} is held by another process{pid}, most likely a running"
            " `segflow serve`:[/red] reach the same data over the server's HTTP API"
            " (GET /v1/segments, /v1/segments/ID/members, ... with an admin key), or stop"
            " it first",
            highlight=False,
        )
        raise typer.Exit(2) from None


@contextmanager
def _service(db: Path, *, create: bool = False) -> Iterator[Segflow]:
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


def _print_table(table: Table) -> None:
    """Print a table at least as wide as its widest row, so ids are never cut (a pipe
    or a narrow terminal would otherwise truncate them at its width)."""
    need = Measurement.get(out, out.options.update_width(1 << 16), table).maximum
    width = out.width
    out.width = max(width, need)
    try:
        out.print(table)
    finally:
        out.width = width


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
    from segflow.model.events import IngestError

    with _service(db, create=True) as sf, _progress("ingesting") as update:
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
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show who would enter/leave; save nothing.")
    ] = False,
    at: AtOption = None,
) -> None:
    """Validate and save segment definitions (a new version when the definition changed);
    first shows who each new or edited segment would move."""
    from segflow.model.time import utcnow
    from segflow.service.segments import edit_diffs

    with _service(db) as sf:
        diffs = edit_diffs(sf, _checked(sf, path), _at(at) or utcnow())
        if diffs:
            _print_table(_diff_table(diffs))
        if dry_run:
            return
        for seg, status in sf.apply(path):
            out.print(f"{status:9} {seg.id} (v{seg.version})")


def _diff_table(diffs: Any) -> Table:
    table = Table(title="if saved now")
    for col in ("segment", "before", "after", "entering", "leaving"):
        table.add_column(col)
    for d in diffs:
        shown = [", ".join(ids[:5]) + (f" +{len(ids) - 5:,}" if len(ids) > 5 else "")
                 for ids in (d.entering, d.leaving)]  # fmt: skip
        table.add_row(d.segment_id, f"{d.size_before:,}", f"{d.size_after:,}", *shown)
    return table


@segments_app.command("validate")
def segments_validate(
    path: Annotated[Path, typer.Argument(help="A YAML/JSON file or a directory of them.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Check definitions (syntax, types, limits, references, cycles: every problem at
    once) without saving; names the store has never seen are warned about."""
    with _service(db) as sf:
        segs = _checked(sf, path)
        sf.registry.check(segs)
    out.print(f"[green]ok[/green]: {len(segs)} segment(s) valid")


def _checked(sf: Segflow, path: Path) -> list[Segment]:
    """The segments under ``path``, checked against the store: warnings printed, every
    problem raised at once."""
    from segflow.service.handle import read_segment_reports
    from segflow.service.segments import check_drafts

    checked = check_drafts(sf, read_segment_reports(path))
    for w in checked.warnings:
        console.print(f"[yellow]warning[/yellow] {escape(str(w))}", highlight=False)
    return checked.raise_problems()


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
    _print_table(table)


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
        done = sf.import_static(segment_id, csv_file, name)
    out.print(f"static segment {segment_id}: {done.members:,} members")
    if done.unknown:
        shown = ", ".join(done.unknown[:20]) + (" ..." if len(done.unknown) > 20 else "")
        console.print(
            f"[yellow]{len(done.unknown):,} unknown id(s) left out (no such profile):[/yellow]"
            f" {escape(shown)}",
            highlight=False,
        )


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
        _print_table(_sizes_table(sf, evaluation))
    console.print(f"evaluated {len(evaluation.sizes)} segments in {evaluation.seconds:.2f}s")


@app.command()
def compact(db: DbOption = DEFAULT_DB) -> None:
    """Re-cluster stored events by event name and traits by key so batch evaluation reads
    only what it needs."""
    with _service(db) as sf:
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
    """Export a segment's members with their current traits (one column per trait) to
    CSV or Parquet."""
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
    db: DbOption = DEFAULT_DB,
    port: Annotated[int, typer.Option(help="Port to serve on (with --serve).")] = 8000,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite a store not made by the demo.")
    ] = False,
) -> None:
    """Generate a realistic shop, load it, apply the segment library, evaluate, print
    sizes, then serve it (API + UI) with a fresh admin/write key pair."""
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
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    with _progress("generating shop") as update:
        summary = generate_shop(
            data_dir, customers=customers, seed=seed, end=end, days=days, progress=update
        )
    console.print(f"generated {summary.events:,} events for {customers:,} customers")
    with _service(db, create=True) as sf:
        sf.store.mark_demo()
        with _progress("loading events") as update:
            sf.ingest(list(summary.paths), progress=update)
        _refresh_demo_scores(sf, end)
        sf.apply(LIBRARY)
        evaluation, _ = sf.evaluate(end)
        _print_table(_sizes_table(sf, evaluation))
    console.print(
        f"evaluated {len(evaluation.sizes)} segments in {evaluation.seconds:.2f}s; db: {db}"
    )
    if serve:
        _serve(db, "127.0.0.1", port, demo_keys=True)


def _made_by_demo(db: Path) -> bool:
    with _service(db) as sf:
        return sf.store.made_by_demo()


# -- server and API keys --------------------------------------------------------------

keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys (write: ingestion; admin).")
app.add_typer(keys_app, name="keys")


def _serve(
    db: Path,
    host: str,
    port: int,
    *,
    demo_keys: bool = False,
    scores_cron: str | None = "0 3 * * *",
    edge: bool = True,
) -> None:
    """Run the server on ``db`` (keys created first for the demo, shown once)."""
    import duckdb

    from segflow.api.deps import Settings
    from segflow.server import make_context, supervise

    try:
        settings = Settings(scores_cron=scores_cron)
    except ValueError as e:
        console.print(f"[red]--{e}[/red]".replace("scores_cron", "scores-cron", 1))
        raise typer.Exit(2) from None
    try:
        ctx = make_context(db, settings=settings)
    except duckdb.IOException as e:  # most often: another process holds the file
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
    _serve(db, host, port, scores_cron=None if no_scores else scores_cron, edge=not no_edge)


@keys_app.command("create")
def keys_create(
    kind: Annotated[str, typer.Option("--kind", help="write (ingestion only) or admin.")],
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create a key and print it (only its hash is stored: copy it now)."""
    with _service(db, create=True) as sf:
        new = sf.key_store().create(kind, name)
    console.print(f"created {new.key.kind} key {new.key.id} ({new.key.name}):")
    out.print(new.token)


@keys_app.command("list")
def keys_list(db: DbOption = DEFAULT_DB) -> None:
    """Every key with its kind and state (never the secret)."""
    with _service(db) as sf:
        keys = sf.key_store().list()
    table = Table("id", "kind", "name", "created", "state")
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        table.add_row(k.id, k.kind, k.name, f"{k.created_at:%Y-%m-%d %H:%M}", state)
    _print_table(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, db: DbOption = DEFAULT_DB) -> None:
    """Revoke a key by id: requests with it get 401 from then on."""
    with _service(db) as sf:
        k = sf.key_store().revoke(key_id)
    console.print(f"revoked {k.kind} key {k.id} ({k.name})")


# -- value scores and predictions ----------------------------------------------------

scores_app = typer.Typer(no_args_is_help=True, help="Value scores and predictions as traits.")
app.add_typer(scores_app, name="scores")


def _refresh_demo_scores(sf: Segflow, end: datetime) -> None:
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


@scores_app.command("refresh")
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

    with _service(db) as sf:
        report = refresh_scores(sf, _at(at), ScoresConfig(classifier=classifier))
    out.print_json(json.dumps(report.as_dict(), default=str))


@scores_app.command("show")
def scores_show(
    profile: Annotated[str | None, typer.Argument(help="A profile id (default: summary).")] = None,
    at: AtOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """One profile's scores, or how many profiles fall in each group, stage and tier."""
    from segflow.service.scores import scores_for, scores_summary

    with _service(db) as sf:
        if profile is not None:
            out.print_json(json.dumps(scores_for(sf, profile, _at(at)), default=str))
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
        _print_table(table)


@scores_app.command("models")
def scores_models_cmd(db: DbOption = DEFAULT_DB) -> None:
    """Model parameters and fit quality of the latest refresh (JSON)."""
    from segflow.service.scores import scores_models

    with _service(db) as sf:
        run = scores_models(sf)
    if run is None:
        console.print("no scores yet: run `segflow scores refresh`")
        raise typer.Exit(1)
    keys = ("as_of", "computed_at", "customers", "bgnbd", "gamma_gamma", "classifier")
    out.print_json(json.dumps({k: run.get(k) for k in (*keys, "classifier_note", "config")}))


@scores_app.command("discover")
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

    with _service(db) as sf:
        proposals = discover_segments(sf, k=k, depth=depth, at=_at(at))
    table = Table(title="discovered segments")
    for col in ("segment", "cluster size", "rule size", "precision", "recall", "description"):
        table.add_column(col)
    for p in proposals:
        table.add_row(
            p.segment["id"], f"{p.size:,}", f"{p.rule_size:,}", f"{p.precision:.3f}",
            f"{p.recall:.3f}", p.segment["description"],
        )  # fmt: skip
    _print_table(table)
    docs = [p.segment for p in proposals]
    if output is not None:
        output.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        console.print(f"wrote {len(docs)} segments to {output}")
    else:
        out.print(yaml.safe_dump_all(docs, sort_keys=False))


# -- real-time: replay, explain, change log -------------------------------------------


def _instant(value: str | None, hint: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=hint) from None


def _change_line(c: Any) -> str:
    sign = "[green]+ entered[/green]" if c.entered else "[red]- exited [/red]"
    at = c.at.isoformat(timespec="microseconds")
    return f"{at}Z  {sign}  {escape(c.segment_id)}  {escape(c.profile_id)}  ({c.reason})"


@app.command()
def replay(
    db: DbOption = DEFAULT_DB,
    speed: Annotated[
        float | None, typer.Option("--speed", help="Pace: 1.0 is real time, 60 a minute a second.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Stop at this ISO instant.")] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Start here (default: the first event).")
    ] = None,
) -> None:
    """Feed stored events through the real-time engine on virtual time, printing each
    membership change as it happens and storing it in the change log."""
    from segflow.realtime import VirtualClock
    from segflow.service.live import LiveEvaluator

    if speed is not None and speed <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--speed")
    start, stop = _instant(from_, "--from"), _instant(until, "--until")
    with _service(db) as sf:
        live = LiveEvaluator(sf, VirtualClock(datetime(1970, 1, 1)))

        def show(batch: Any) -> None:
            for c in batch:
                out.print(_change_line(c), highlight=False)

        changes = live.replay(start=start, until=stop, speed=speed, on_changes=show)
    console.print(f"{len(changes):,} changes logged")


def _js(v: Any) -> str:
    return escape(json.dumps(v))


def _explain_tree(node: dict[str, Any], tree: Any = None) -> Any:
    from rich.tree import Tree

    mark = "[green]true[/green]" if node.get("value") else "[red]false[/red]"
    op = node.get("op")
    if op == "compare":
        f = node["feature"]
        what = {k: v for k, v in f.items() if k not in ("key", "value", "kind")}
        label = f"{mark}  {_js(what)} {_js(node['comparison'])}  (value: {_js(f['value'])})"
    elif op == "abandoned":
        label = (
            f"{mark}  abandoned for {node['for']}: last trigger"
            f" {_js(node['trigger'].get('value'))}, last follow-up"
            f" {_js(node['followed_by'].get('value'))}"
        )
    elif op == "flag":
        f = node["feature"]
        what = {k: v for k, v in f.items() if k not in ("key", "value")}
        label = f"{mark}  {_js(what)}  (value: {_js(f['value'])})"
    elif op == "bucket":
        span = escape(f"[{node['from']}, {node['to']})")
        label = f"{mark}  bucket {escape(node['salt'])} {span} (draw: {node['bucket']:.2f})"
    elif op == "in_segment":
        label = f"{mark}  in_segment {escape(node['segment'])}"
    else:
        label = f"{mark}  {op}"
    branch = Tree(label, highlight=False) if tree is None else tree.add(label, highlight=False)
    for child in node.get("items", []):
        _explain_tree(child, branch)
    if "item" in node:
        _explain_tree(node["item"], branch)
    return branch


@app.command()
def explain(
    segment_id: str,
    profile_id: str,
    db: DbOption = DEFAULT_DB,
    at: AtOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a tree.")] = False,
) -> None:
    """Why a profile is (not) in a segment: each condition's value and the feature
    values behind it, from the real-time engine over stored history."""
    from segflow.realtime import WallClock
    from segflow.service.live import LiveEvaluator

    when = _at(at)
    with _service(db) as sf:
        result = LiveEvaluator(sf, WallClock()).explain(segment_id, profile_id, when)
    if as_json:
        out.print_json(json.dumps(result))
        return
    verdict = "[green]member[/green]" if result["member"] else "[red]not a member[/red]"
    who = escape(f"{result['profile']} in {result['segment']} (v{result['version']})")
    out.print(f"{who} at {result['at']}: {verdict}")
    out.print(_explain_tree(result["condition"]))


@app.command()
def changes(
    db: DbOption = DEFAULT_DB,
    segment: Annotated[str | None, typer.Option("--segment", help="Only this segment.")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Only this profile.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Changes at or after.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=0, help="At most N rows.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
) -> None:
    """The stored membership change log (oldest first)."""
    import csv

    if fmt not in ("table", "json", "csv"):
        raise typer.BadParameter(f"{fmt!r}: use table, json or csv", param_hint="--format")
    start = _instant(since, "--since")
    with _service(db) as sf:
        rows = sf.changes.query(segment_id=segment, profile_id=profile, since=start, limit=limit)
    fields = ("seq", "segment_id", "profile_id", "entered", "at", "reason", "version")

    if fmt == "json":
        sys.stdout.write(json.dumps([c.to_json() for c in rows]) + "\n")
    elif fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(c.to_json() for c in rows)
    else:
        table = Table(title=f"membership changes ({len(rows):,})")
        for col in ("seq", "at", "change", "segment", "profile", "reason", "version"):
            table.add_column(col)
        for c in rows:
            table.add_row(
                str(c.seq), format_instant(c.at), "entered" if c.entered else "exited",
                c.segment_id, c.profile_id, c.reason, str(c.version),
            )  # fmt: skip
        _print_table(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
