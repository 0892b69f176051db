"""``segflow destinations ...``: where segments go (webhooks, Redis streams, NATS
JetStream subjects, file drops): add, list, remove, the delivery log, replay of the
dead-letter list, and full syncs run here and now.  With no server running: a running
server holds the store (use its ``/v1/destinations`` API instead)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from segflow.cli.common import DEFAULT_DB, DbOption, console, opened, out, print_table
from segflow.service.destinations import (
    InvalidDestination,
    add,
    destination_report,
    offline_worker,
    parse_destination,
)
from segflow.service.segments import last_change_seq

app = typer.Typer(
    no_args_is_help=True,
    help="Destinations: webhooks, Redis streams, NATS subjects and file drops.",
)


def _pairs(items: list[str], option: str) -> dict[str, Any]:
    """``key=value`` options as a mapping (numbers stay numbers)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint=option)
        out[key] = int(value) if value.isdigit() else value
    return out


@app.command("add")
def destinations_add(
    type_: Annotated[
        str | None,
        typer.Option("--type", help="webhook, redis, nats, kafka, files, ad_audience or esp."),
    ] = None,
    segment: Annotated[
        list[str] | None, typer.Option("--segment", help="A segment to send (repeat).")
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="A priority group to send, its resolution (repeat)."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A label.")] = "",
    events: Annotated[
        str, typer.Option("--events", help="Which changes: entered,exited.")
    ] = "entered,exited",
    no_changes: Annotated[
        bool, typer.Option("--no-changes", help="Full syncs only, no enter/exit changes.")
    ] = False,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="A trait to send, TRAIT or TRAIT=NAME to rename (repeat)."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Records per send.")
    ] = None,
    schedule: Annotated[
        str | None, typer.Option("--schedule", help="Cron (UTC) of full syncs.")
    ] = None,
    channel: Annotated[
        str | None,
        typer.Option("--channel", help="Consent channel: email, sms, push, ads, profiling."),
    ] = None,
    allow_unknown: Annotated[
        bool,
        typer.Option("--allow-unknown-consent", help="Send profiles that never stated consent."),
    ] = False,
    config: Annotated[
        list[str] | None,
        typer.Option("--config", help="A setting of the type, KEY=VALUE (repeat)."),
    ] = None,
    from_json: Annotated[
        Path | None,
        typer.Option("--json", help="The whole configuration as a JSON file (as the API)."),
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Add a destination; it receives the changes logged from now on (a webhook's
    signing secret is printed once)."""
    if from_json is not None:
        body: dict[str, Any] = json.loads(from_json.read_text(encoding="utf-8"))
    else:
        fields = dict(f.partition("=")[::2] for f in field or [])
        body = {
            "type": type_,
            "name": name,
            "segments": list(segment or []),
            "groups": list(group or []),
            "events": [e for e in events.split(",") if e],
            "changes": not no_changes,
            "fields": {k: v or k for k, v in fields.items()},
            "schedule": schedule,
            "channel": channel,
            "unknown_consent": "allow" if allow_unknown else None,
            "config": _pairs(config or [], "--config"),
        }
        if batch_size is not None:
            body["batch_size"] = batch_size
    with opened(db) as sf:
        try:
            dest = parse_destination(body, list(sf.registry.current()), list(sf.registry.groups()))
        except InvalidDestination as e:
            for p in e.problems:
                console.print(f"[red]{p.path or 'destination'}[/]: {p.message}")
            raise typer.Exit(2) from None
        made = add(sf.destination_store(), dest, last_change_seq(sf))
    console.print(f"added {made.kind} destination {made.id}")
    if made.kind == "webhook":
        console.print("signing secret (shown once):")
        out.print(made.config["secret"])
    else:
        out.print(made.id)


@app.command("list")
def destinations_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Every destination with its delivery counts and latest sync."""
    with opened(db) as sf:
        store = sf.destination_store()
        reports = [destination_report(store, d) for d in store.destinations()]
    if as_json:
        out.print_json(json.dumps(reports))
        return
    table = Table("id", "type", "name", "segments", "changes", "schedule",
                  "pending", "delivered", "dead", "last sync")  # fmt: skip
    for r in reports:
        last = r["syncs"][0] if r["syncs"] else None
        table.add_row(
            r["id"], r["type"], r["name"],
            ", ".join([*r["segments"], *(f"group {g}" for g in r["groups"])]),
            ",".join(r["events"]) if r["changes"] else "-", r["schedule"] or "-",
            str(r["deliveries"]["pending"]), str(r["deliveries"]["delivered"]),
            str(r["deliveries"]["dead"]),
            f"{last['status']} {last['sent']} sent" if last else "-",
        )  # fmt: skip
    print_table(table)


@app.command("remove")
def destinations_remove(destination_id: str, db: DbOption = DEFAULT_DB) -> None:
    """Remove a destination (its pending deliveries go to the dead-letter list)."""
    with opened(db) as sf:
        store = sf.destination_store()
        try:
            store.delete(destination_id)
        except KeyError as e:
            console.print(f"[red]{e.args[0]}[/]")
            raise typer.Exit(2) from None
    console.print(f"removed {destination_id}")


@app.command("deliveries")
def destinations_deliveries(
    destination_id: str,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, delivered or dead.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables.")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """The delivery log: counts per status, the deliveries, and each sync's counts."""
    with opened(db) as sf:
        store = sf.destination_store()
        try:
            store.get(destination_id)
        except KeyError as e:
            console.print(f"[red]{e.args[0]}[/]")
            raise typer.Exit(2) from None
        counts = store.counts(destination_id)
        rows = store.deliveries(status=status, destination_id=destination_id, limit=limit)
        syncs = store.syncs(destination_id, limit=limit)
    if as_json:
        doc = {
            "counts": counts,
            "deliveries": [d.to_dict() for d in rows],
            "syncs": [s.to_dict() for s in syncs],
        }
        out.print_json(json.dumps(doc))
        return
    console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    table = Table("id", "seq", "idempotency key", "status", "attempts", "last error")
    for d in rows:
        table.add_row(str(d.id), str(d.change_seq), d.idempotency_key, d.status,
                      str(d.attempts), d.last_error or "")  # fmt: skip
    print_table(table)
    sync_table = Table("sync", "trigger", "status", "members", "held out", "sent", "error")
    for s in syncs:
        sync_table.add_row(str(s.id), s.trigger, s.status, str(s.members), str(s.held_out),
                           str(s.sent), s.error or "")  # fmt: skip
    print_table(sync_table)


@app.command("replay")
def destinations_replay(
    destination_id: str,
    ids: Annotated[
        list[int] | None, typer.Option("--id", help="A dead delivery to replay (default: all).")
    ] = None,
    now: Annotated[
        bool, typer.Option("--now", help="Send them from here now (else the server will).")
    ] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Move dead-lettered deliveries back to pending."""
    with opened(db) as sf:
        worker = offline_worker(sf)
        try:
            worker.store.get(destination_id)
        except KeyError as e:
            console.print(f"[red]{e.args[0]}[/]")
            raise typer.Exit(2) from None
        n = worker.store.replay(ids or None, destination_id=destination_id)
        console.print(f"replayed {n} deliveries")
        if now:
            counts = worker.deliver_now(destination_id)
            console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))


@app.command("sync")
def destinations_sync(destination_id: str, db: DbOption = DEFAULT_DB) -> None:
    """Send every member of the destination's segments now (held-out ones left out)
    and print the sync's counts."""
    with opened(db) as sf:
        worker = offline_worker(sf)
        try:
            worker.store.get(destination_id)
        except KeyError as e:
            console.print(f"[red]{e.args[0]}[/]")
            raise typer.Exit(2) from None
        with console.status("syncing"):
            sync = worker.sync_now(destination_id)
    if sync.status != "done":
        console.print(f"[red]sync {sync.id} failed[/]: {sync.error}")
        raise typer.Exit(1)
    console.print(
        f"sync {sync.id}: {sync.members} members, {sync.held_out} held out, {sync.sent} sent"
    )
    for item in sync.detail or []:
        if "file" in item:
            out.print(f"{item['file']['name']}  {item['file']['rows']} rows")
