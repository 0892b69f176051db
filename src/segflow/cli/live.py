"""Real-time commands: ``replay`` stored events through the engine, ``explain`` a
membership, read the ``changes`` log."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
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
from segflow.model.time import format_instant
from segflow.service.segments import change_json, saved_holdouts

if TYPE_CHECKING:
    from rich.tree import Tree

    from segflow.model.changes import LoggedChange

app = typer.Typer()


def _change_line(c: LoggedChange) -> str:
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
    start, stop = instant(from_, "--from"), instant(until, "--until")
    with opened(db) as sf:
        live = LiveEvaluator(sf, VirtualClock(datetime(1970, 1, 1)))

        def show(batch: Sequence[LoggedChange]) -> None:
            for c in batch:
                out.print(_change_line(c), highlight=False)

        changes = live.replay(start=start, until=stop, speed=speed, on_changes=show)
    console.print(f"{len(changes):,} changes logged")


def _js(v: Any) -> str:
    return escape(json.dumps(v))


def _explain_tree(node: dict[str, Any], tree: Tree | None = None) -> Tree:
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

    when = instant(at)
    with opened(db) as sf:
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
    start = instant(since, "--since")
    with opened(db) as sf:
        rows = sf.changes.query(segment_id=segment, profile_id=profile, since=start, limit=limit)
        holdouts = saved_holdouts(sf)
    fields = (
        "seq", "segment_id", "profile_id", "entered", "at", "reason", "version", "held_out",
        "group", "group_segment",
    )  # fmt: skip

    if fmt == "json":
        sys.stdout.write(json.dumps([change_json(c, holdouts) for c in rows]) + "\n")
    elif fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(change_json(c, holdouts) for c in rows)
    else:
        table = Table(title=f"membership changes ({len(rows):,})")
        for col in ("seq", "at", "change", "segment", "profile", "reason", "version"):
            table.add_column(col)
        for c in rows:
            table.add_row(
                str(c.seq), format_instant(c.at), "entered" if c.entered else "exited",
                c.segment_id, c.profile_id, c.reason, str(c.version),
            )  # fmt: skip
        print_table(table)
