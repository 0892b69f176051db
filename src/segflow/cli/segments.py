"""``segflow segments ...``: define, check, inspect and delete segments, and import
static lists."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
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
from segflow.model.definition import Segment
from segflow.service.handle import Segflow

if TYPE_CHECKING:
    from segflow.service.estimate import Estimate
    from segflow.service.segments import EditDiff

app = typer.Typer(no_args_is_help=True, help="Define and inspect segments.")


@app.command("apply")
def segments_apply(
    path: Annotated[Path, typer.Argument(help="A YAML/JSON file or a directory of them.")],
    db: DbOption = DEFAULT_DB,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Only show who would enter/leave and what it would cost; save nothing.",
        ),
    ] = False,
    at: AtOption = None,
) -> None:
    """Validate and save segment definitions (a new version when the definition changed);
    first shows who each new or edited segment would move.  A dry run also estimates
    each one's cost: the features it shares or adds, the rows they read and the
    evaluation time it adds (measured: two library evaluations per segment)."""
    from segflow.model.time import utcnow
    from segflow.service.estimate import estimate
    from segflow.service.segments import edit_diffs

    with opened(db) as sf:
        drafts = _checked(sf, path)
        when = instant(at) or utcnow()
        diffs = edit_diffs(sf, drafts, when)
        if diffs:
            print_table(_diff_table(diffs))
        if dry_run:
            by_id = {d.id: d for d in drafts}
            for d in diffs:
                others = [s for s in drafts if s.id != d.segment_id]
                print_table(_estimate_table(estimate(sf, by_id[d.segment_id], when, others)))
            return
        for seg, status in sf.apply(path):
            out.print(f"{status:9} {seg.id} (v{seg.version})")


def _diff_table(diffs: list[EditDiff]) -> Table:
    table = Table(title="if saved now")
    for col in ("segment", "before", "after", "entering", "leaving"):
        table.add_column(col)
    for d in diffs:
        shown = [", ".join(ids[:5]) + (f" +{len(ids) - 5:,}" if len(ids) > 5 else "")
                 for ids in (d.entering, d.leaving)]  # fmt: skip
        table.add_row(d.segment_id, f"{d.size_before:,}", f"{d.size_after:,}", *shown)
    return table


def _estimate_table(est: Estimate) -> Table:
    t = est.timing
    table = Table(
        title=f"estimate for {est.segment_id}",
        caption=(
            f"size {est.size:,} of {est.profiles:,} profiles ({est.share:.1%}); library"
            f" evaluation {t.library_seconds:.3f} s, with it {t.with_draft_seconds:.3f} s"
            f" (+{t.added_seconds:.3f} s)"
        ),
    )
    for col in ("feature", "kind", "computed for", "new rows read"):
        table.add_column(col)
    events = {tuple(e.names): e.events for e in est.events}
    traits = {r.key: r.rows for r in est.traits}
    for f in est.features:
        reads = ""
        if f.new and f.events:
            reads = f"{events.get(tuple(f.events), 0):,} events ({', '.join(f.events)})"
        elif f.new and f.trait is not None:
            reads = f"{traits.get(f.trait, 0):,} trait writes"
        shared = ", ".join(f.shared_with) if f.shared_with else "new"
        table.add_row(escape(f.description), f.kind, escape(shared), escape(reads))
    return table


@app.command("validate")
def segments_validate(
    path: Annotated[Path, typer.Argument(help="A YAML/JSON file or a directory of them.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Check definitions (syntax, types, limits, references, cycles: every problem at
    once) without saving; names the store has never seen are warned about."""
    with opened(db) as sf:
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


@app.command("list")
def segments_list(db: DbOption = DEFAULT_DB) -> None:
    """List saved segments."""
    with opened(db) as sf:
        segs = sf.segments()
    table = Table()
    for c in ("id", "name", "mode", "version", "tags"):
        table.add_column(c)
    for s in segs.values():
        table.add_row(s.id, s.name, s.mode, str(s.version), ", ".join(s.tags))
    print_table(table)


@app.command("show")
def segments_show(segment_id: str, db: DbOption = DEFAULT_DB) -> None:
    """Print a segment's canonical definition (YAML)."""
    import yaml

    with opened(db) as sf:
        seg = sf.segment(segment_id)
    out.print(yaml.safe_dump(seg.to_dict(), sort_keys=False, allow_unicode=True), end="")


@app.command("delete")
def segments_delete(
    segment_id: str,
    force: Annotated[bool, typer.Option(help="Delete even a protected segment.")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete a segment (protected ones and ones other segments use refuse)."""
    with opened(db) as sf:
        sf.delete(segment_id, force=force)
    out.print(f"deleted {segment_id}")


@app.command("experiment")
def segments_experiment(
    segment_id: str,
    goal: Annotated[
        str, typer.Option(help="conversion, revenue_per_member or orders_per_member.")
    ] = "conversion",
    since: Annotated[
        str | None,
        typer.Option("--from", help="Period start (default: when the version was saved)."),
    ] = None,
    until: Annotated[str | None, typer.Option("--to", help="Period end (default: now).")] = None,
    mde: Annotated[
        float | None,
        typer.Option(help="Minimum detectable effect (absolute) to size the arms for."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Compare a segment's treatment (members activated) with its holdout on a goal."""
    import json

    from segflow.service.experiments import GOALS, NoHoldout, experiment

    if goal not in GOALS:
        raise typer.BadParameter(f"use one of: {', '.join(GOALS)}", param_hint="--goal")
    with opened(db) as sf:
        try:
            result = experiment(
                sf,
                segment_id,
                goal,  # type: ignore[arg-type]
                since=instant(since, "--from"),
                until=instant(until, "--to"),
                mde=mde,
            )
        except NoHoldout as e:
            raise typer.BadParameter(str(e), param_hint="SEGMENT_ID") from None
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--from/--to/--mde") from None
    if as_json:
        out.print_json(json.dumps(result))
        return
    _print_experiment(result)


def _print_experiment(result: dict[str, Any]) -> None:
    r = result["report"]
    table = Table(
        title=f"{result['segment_id']}: {result['goal']} from {result['from']} to {result['to']}"
    )
    for col in ("arm", "members", "value"):
        table.add_column(col)
    for arm in ("treatment", "holdout"):
        a = r[arm]
        table.add_row(arm, f"{a['n']:,}", _num(a["value"]))
    print_table(table)
    out.print(
        f"cohort         {result['cohort']:,} ({result['at_start']:,} members at the start,"
        f" {result['joiners']:,} joined during the period; {result['without_holdout']:,}"
        " left out: entered under a version with no holdout)"
    )
    ci = r["ci"]
    out.print(f"absolute lift  {_num(r['absolute_lift'])}")
    out.print(f"relative lift  {_num(r['relative_lift'])}")
    out.print(f"95% interval   {_num(ci['low']) + ' .. ' + _num(ci['high']) if ci else '-'}")
    out.print(f"p-value        {_num(r['p_value'])}")
    out.print(f"verdict        {r['verdict']}" + (f" ({r['reason']})" if r["reason"] else ""))
    if r["still_needed"]:
        out.print(f"still needed   {r['still_needed']:,} more members")
    m = result["mde"]
    if m is not None:
        if m["total"] is None:
            out.print(f"for mde {m['effect']:g}: {m['reason']}")
        else:
            out.print(
                f"for mde {m['effect']:g}: {m['treatment']:,} treatment +"
                f" {m['holdout']:,} holdout members"
            )


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


@app.command("import")
def segments_import(
    segment_id: str,
    csv_file: Annotated[
        Path, typer.Argument(help="CSV with a profile_id column (or ids in the first column).")
    ],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create or replace a static segment from a list of profile ids."""
    with opened(db) as sf:
        done = sf.import_static(segment_id, csv_file, name)
    out.print(f"static segment {segment_id}: {done.members:,} members")
    if done.unknown:
        shown = ", ".join(done.unknown[:20]) + (" ..." if len(done.unknown) > 20 else "")
        console.print(
            f"[yellow]{len(done.unknown):,} unknown id(s) left out (no such profile):[/yellow]"
            f" {escape(shown)}",
            highlight=False,
        )
