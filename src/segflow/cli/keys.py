"""``segflow keys ...``: API keys for ingestion (write), everything else (admin) and
the on-site segments read from a shop's web pages (publishable)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from segflow.cli.common import DEFAULT_DB, DbOption, console, opened, out, print_table

app = typer.Typer(
    no_args_is_help=True,
    help="Manage API keys (write: ingestion; admin; publishable: on-site read).",
)


@app.command("create")
def keys_create(
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="write (ingestion only), admin, or publishable (only the on-site segments "
            "read, GET /v1/onsite/segments: safe in a web page).",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "",
    origin: Annotated[
        list[str] | None,
        typer.Option(
            "--origin",
            help="Publishable keys: a web origin allowed to use the key "
            "(https://shop.example); repeat for more. None: any origin.",
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create a key and print it (only its hash is stored: copy it now)."""
    with opened(db, create=True) as sf:
        try:
            new = sf.key_store().create(kind, name, origin or ())
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--origin/--kind") from None
    console.print(f"created {new.key.kind} key {new.key.id} ({new.key.name}):")
    if new.key.origins:
        console.print("allowed origins: " + ", ".join(new.key.origins))
    out.print(new.token)


@app.command("list")
def keys_list(db: DbOption = DEFAULT_DB) -> None:
    """Every key with its kind and state (never the secret)."""
    with opened(db) as sf:
        keys = sf.key_store().list()
    table = Table("id", "kind", "name", "created", "state", "origins")
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        origins = ", ".join(k.origins) if k.origins else ("any" if k.kind == "publishable" else "")
        table.add_row(k.id, k.kind, k.name, f"{k.created_at:%Y-%m-%d %H:%M}", state, origins)
    print_table(table)


@app.command("revoke")
def keys_revoke(key_id: str, db: DbOption = DEFAULT_DB) -> None:
    """Revoke a key by id: requests with it get 401 from then on."""
    with opened(db) as sf:
        k = sf.key_store().revoke(key_id)
    console.print(f"revoked {k.kind} key {k.id} ({k.name})")
