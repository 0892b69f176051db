"""``segflow groups ...``: define, inspect, export and delete priority groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from segflow.cli.common import DEFAULT_DB, AtOption, DbOption, instant, opened, out, print_table

app = typer.Typer(no_args_is_help=True, help="Priority (exclusive) groups of segments.")


@app.command("apply")
def groups_apply(
    path: Annotated[Path, typer.Argument(help="A YAML/JSON file or a directory of them.")],
    db: DbOption = DEFAULT_DB,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show who would move; save nothing.")
    ] = False,
    at: AtOption = None,
) -> None:
    """Validate and save group definitions (a new version when one changed), first
    showing who each would move between its resolved members (as of ``--at``, default
    now): unknown segments, a segment in two groups and cycles through a resolution are
    refused, naming the path, with nothing saved."""
    from segflow.service.groups import group_diffs, parse_groups, read_group_reports, save_groups

    with opened(db) as sf:
        groups = parse_groups(read_group_reports(path))
        sf.registry.check((), groups)
        table = Table(title="if saved now")
        for col in ("resolved member", "before", "after", "entering", "leaving"):
            table.add_column(col)
        for g in groups:
            for d in group_diffs(sf, g, instant(at)):
                shown = [", ".join(ids[:5]) + (f" +{len(ids) - 5:,}" if len(ids) > 5 else "")
                         for ids in (d.entering, d.leaving)]  # fmt: skip
                table.add_row(d.segment_id, f"{d.size_before:,}", f"{d.size_after:,}", *shown)
        print_table(table)
        if dry_run:
            return
        for g, status in save_groups(sf, None, groups):
            out.print(f"{status:9} {g.id} (v{g.version}): {' > '.join(g.segments)}")


@app.command("list")
def groups_list(db: DbOption = DEFAULT_DB) -> None:
    """List groups, each with its segments, highest priority first."""
    with opened(db) as sf:
        groups = sf.registry.groups()
    table = Table()
    for c in ("group", "name", "version", "segments (highest priority first)"):
        table.add_column(c)
    for g in groups.values():
        table.add_row(g.id, g.name, str(g.version), " > ".join(g.segments))
    print_table(table)


@app.command("show")
def groups_show(group_id: str, db: DbOption = DEFAULT_DB) -> None:
    """Print a group's canonical definition (YAML)."""
    import yaml

    from segflow.service.groups import get_group

    with opened(db) as sf:
        g = get_group(sf, group_id)
    out.print(yaml.safe_dump(g.to_dict(), sort_keys=False, allow_unicode=True), end="")


@app.command("members")
def groups_members(
    group_id: str,
    db: DbOption = DEFAULT_DB,
    at: AtOption = None,
    limit: Annotated[int, typer.Option(help="Ids shown per segment.")] = 10,
) -> None:
    """Each segment of the group with the profiles that resolve to it as of ``--at``
    (default now): every profile is under at most one, the highest it qualifies for."""
    from segflow.service.groups import group_members

    with opened(db) as sf:
        members = group_members(sf, None, group_id, instant(at))
    table = Table(title=f"{group_id}: {sum(len(v) for v in members.values()):,} profiles")
    for c in ("priority", "segment", "resolved id", "members", "first ids"):
        table.add_column(c)
    for i, (sid, pids) in enumerate(members.items(), start=1):
        shown = ", ".join(pids[:limit]) + (" ..." if len(pids) > limit else "")
        table.add_row(str(i), sid, f"{group_id}:{sid}", f"{len(pids):,}", shown)
    print_table(table)


@app.command("export")
def groups_export(
    group_id: str,
    to: Annotated[Path, typer.Option("-o", "--output", help="Target .csv or .parquet file.")],
    db: DbOption = DEFAULT_DB,
    at: AtOption = None,
    include_held_out: Annotated[
        bool,
        typer.Option("--include-held-out", help="List holdouts too, marked in a held_out column."),
    ] = False,
) -> None:
    """Write every profile in the group's resolution with the segment it resolves to
    (a ``segment`` column) and its current traits; profiles in their segment's
    holdout are left out unless ``--include-held-out``."""
    from segflow.service.groups import export_group_to

    with opened(db) as sf:
        n = export_group_to(sf, None, group_id, to, instant(at), include_held_out=include_held_out)
    out.print(f"wrote {n:,} profiles to {to}")


@app.command("delete")
def groups_delete(group_id: str, db: DbOption = DEFAULT_DB) -> None:
    """Delete a group (refused while a segment reads one of its resolutions)."""
    from segflow.service.groups import delete_group

    with opened(db) as sf:
        delete_group(sf, None, group_id)
    out.print(f"deleted group {group_id}")
