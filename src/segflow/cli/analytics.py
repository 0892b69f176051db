"""``segflow analytics ...``: what segments are worth, how they overlap, how customers
move between them; Rich tables, or the API's JSON document with ``--json``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.table import Table

from segflow.analytics.overlap import Thresholds
from segflow.cli.common import DEFAULT_DB, AtOption, DbOption, console, instant, opened, out
from segflow.cli.common import print_table as show
from segflow.service import analytics as service

app = typer.Typer(no_args_is_help=True, help="Segment analytics: metrics, overlap and transitions.")

T = TypeVar("T")
DAY_US = 86_400_000_000

SegmentsArg = Annotated[
    list[str] | None, typer.Argument(help="Segment ids (default: every saved segment).")
]
FromOption = Annotated[
    str | None,
    typer.Option("--from", help="Start of the period, ISO 8601 (default: 30 days before --to)."),
]
ToOption = Annotated[
    str | None,
    typer.Option("--to", "--at", help="End of the period, ISO 8601 (default: now)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
_HINTS = {"segment": "SEGMENTS", "from": "--from", "to": "--to"}


def _asked(fn: Callable[[], T]) -> T:
    """``fn()`` with a parameter the service refuses reported as a usage error naming it."""
    try:
        return fn()
    except service.BadRequest as e:
        hint = _HINTS.get(e.param, "--" + e.param.replace("_", "-"))
        raise typer.BadParameter(e.reason, param_hint=hint) from None


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _cmp(c: dict[str, Any] | None, fmt: Callable[[float | None], str] = _num) -> str:
    """A value with its index vs everyone."""
    if c is None:
        return "-"
    index = "" if c["index"] is None else f" ({c['index']:.2f}x)"
    return fmt(c["value"]) + index


def _print_json(report: dict[str, Any]) -> None:
    out.print_json(json.dumps(report))


@app.command("metrics")
def metrics_cmd(
    segments: SegmentsArg = None,
    start: FromOption = None,
    end: ToOption = None,
    bucket: Annotated[
        Literal["day", "week"], typer.Option(help="Buckets of the time series.")
    ] = "day",
    series: Annotated[bool, typer.Option("--series", help="Also print each time series.")] = False,
    as_json: JsonOption = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Each segment's size, entries and exits, conversion, revenue, AOV, engagement,
    email rates and scores over a period, with the index vs everyone (in brackets)."""
    first, last = instant(start, "--from"), instant(end, "--to")
    with opened(db) as sf:
        report = _asked(lambda: service.metrics(sf, segments, first, last, bucket=bucket))
    if as_json:
        _print_json(report)
        return
    table = Table(title=f"segment metrics {report['from']} .. {report['to']}")
    columns = (
        "segment", "size", "share", "entered", "exited", "conversion", "revenue/member",
        "AOV", "orders/member", "repeat rate", "sessions/member", "page views/member",
        "open rate", "click rate", "avg CLV", "avg churn risk",
    )  # fmt: skip
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for m in [*report["segments"], {**report["everyone"], "segment": "(everyone)"}]:
        entered, exited = m.get("entered"), m.get("exited")
        table.add_row(
            m["segment"], f"{m['size']:,}", _pct(m["share"]),
            "-" if entered is None else f"{entered:,}", "-" if exited is None else f"{exited:,}",
            _cmp(m["conversion_rate"], _pct), _cmp(m["revenue_per_member"]), _cmp(m["aov"]),
            _cmp(m["orders_per_member"]), _cmp(m["repeat_purchase_rate"], _pct),
            _cmp(m["sessions_per_member"]), _cmp(m["page_views_per_member"]),
            _cmp(m["open_rate"], _pct), _cmp(m["click_rate"], _pct), _cmp(m["average_clv"]),
            _cmp(m["average_churn_risk"], _pct),
        )  # fmt: skip
    show(table)
    console.print(f"{report['n_profiles']:,} profiles; members as of {report['to']}")
    if series:
        for m in report["segments"]:
            t = Table(title=f"{m['segment']} per {report['bucket']} ({m['series_source']})")
            for col in ("end", "size", "entered", "exited", "net", "growth"):
                t.add_column(col, justify="left" if col == "end" else "right")
            for p in m["series"]:
                t.add_row(
                    p["end"], *("-" if p[k] is None else f"{p[k]:,}" for k in ("size", "entered",
                    "exited", "net")), _pct(p["growth_rate"]),
                )  # fmt: skip
            show(t)


@app.command("overlap")
def overlap_cmd(
    segments: SegmentsArg = None,
    at: AtOption = None,
    top: Annotated[int, typer.Option(min=0, help="Combinations listed.")] = 10,
    contained: Annotated[
        float, typer.Option(min=0, max=1, help="Warn when more of a segment is in another.")
    ] = 0.9,
    near_duplicate: Annotated[
        float, typer.Option(min=0, max=1, help="Warn from this Jaccard index.")
    ] = 0.9,
    min_size: Annotated[int, typer.Option(min=0, help="Warn below this many members.")] = 100,
    as_json: JsonOption = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Pairwise overlap (members in both, % of the row's segment, Jaccard), exclusive
    members, the top combinations and over-segmentation warnings."""
    when = instant(at)
    limits = Thresholds(contained=contained, near_duplicate=near_duplicate, min_size=min_size)
    with opened(db) as sf:
        report = _asked(
            lambda: service.overlap_report(sf, segments, when, top=top, thresholds=limits)
        )
    if as_json:
        _print_json(report)
        return
    ids = report["segments"]
    table = Table(title=f"in both (% of row) as of {report['at']}")
    table.add_column("segment")
    for col in (*ids, "exclusive", "Jaccard max"):
        table.add_column(col, justify="right")
    for i, sid in enumerate(ids):
        cells = [
            f"{report['intersections'][i][j]:,} ({_pct(report['row_share'][i][j])})"
            for j in range(len(ids))
        ]
        others = [v for j, v in enumerate(report["jaccard"][i]) if j != i and v is not None]
        table.add_row(
            sid, *cells, f"{report['exclusive'][i]:,}", _num(max(others)) if others else "-"
        )
    show(table)
    combos = Table(title=f"top combinations ({report['in_any']:,} profiles in any)")
    combos.add_column("segments")
    combos.add_column("profiles", justify="right")
    for c in report["top_combinations"]:
        combos.add_row(" + ".join(c["segments"]), f"{c['count']:,}")
    show(combos)
    for w in report["warnings"]:
        console.print(f"[yellow]warning[/yellow] ({w['kind']}): {w['message']}")


def _show_matrix(report: dict[str, Any]) -> None:
    places = [*report["stages"], "(outside)"]
    table = Table(title=f"from {report['from']} (rows) to {report['to']} (columns)")
    table.add_column("from \\ to")
    for p in places:
        table.add_column(p, justify="right")
    table.add_column("total", justify="right")
    for i, p in enumerate(places):
        row = report["counts"][i]
        cells = [f"{n:,} ({_pct(s)})" for n, s in zip(row, report["row_share"][i], strict=True)]
        table.add_row(p, *cells, f"{report['at_a'][i]:,}")
    table.add_row("total", *(f"{n:,}" for n in report["at_b"]), "")
    show(table)
    console.print(
        f"stayed {report['stayed']:,}, forward {report['forward']:,}, backward"
        f" {report['backward']:,}, entered {report['entered']:,}, exited {report['exited']:,}"
    )


@app.command("transitions")
def transitions_cmd(
    segments: Annotated[list[str], typer.Argument(help="The group's segments, in order.")],
    start: Annotated[
        str | None,
        typer.Option("--from", help="Instant A, ISO 8601 (default: 30 days before --to)."),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Instant B, ISO 8601 (default: now).")
    ] = None,
    every: Annotated[
        str | None,
        typer.Option("--every", help="Also one matrix per day or week from --from: day|week."),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="Members of past instants: auto (the change log where it covers them, else"
            " evaluation), changes or evaluation.",
        ),
    ] = "auto",
    as_json: JsonOption = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """How many profiles moved from each segment of an ordered group at --from to each
    at --to (with --every, per day or week), and the time from entering each segment to
    entering the next."""
    first, last = instant(start, "--from"), instant(end, "--to")
    with opened(db) as sf:
        report = _asked(
            lambda: service.transitions_report(
                sf, segments, first, last, every=every, source=source
            )
        )
    if as_json:
        _print_json(report)
        return
    for matrix in [report, *(report["periods"] or [])]:
        _show_matrix(matrix)
    logged = sorted({s for src in report["sources"] for s in src["changes"]})
    evaluated = sorted({s for src in report["sources"] for s in src["evaluation"]})
    console.print(
        f"members from the change log: {', '.join(logged) or '-'}; evaluated:"
        f" {', '.join(evaluated) or '-'}"
    )
    durations = Table(title="days from entering a segment to entering the next (change log)")
    for col in ("from", "to", "profiles", "median", "p25", "p75", "mean"):
        durations.add_column(col, justify="left" if col in ("from", "to") else "right")
    for d in report["time_to_enter"]:

        def days(us: float | None) -> str:
            return "-" if us is None else f"{us / DAY_US:,.1f}"

        durations.add_row(
            d["source"], d["target"], f"{d['pairs']:,}", days(d["median"]),
            days(d["percentiles"].get("p25")), days(d["percentiles"].get("p75")), days(d["mean"]),
        )  # fmt: skip
    show(durations)
