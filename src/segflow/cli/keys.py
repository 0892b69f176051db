"""``segflow keys ...``: API keys for ingestion (write) and everything else (admin)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from segflow.cli.common import DEFAULT_DB, DbOption, console, opened, out, print_table

app = typer.Typer(no_args_is_help=True, help="Manage API keys (write: ingestion; admin).")


@app.command("create")
def keys_create(
    kind: Annotated[str, typer.Option("--kind", help="write (ingestion only) or admin.")],
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create a key and print it (only its hash is stored: copy it now)."""
    with opened(db, create=True) as sf:
        new = sf.key_store().create(kind, name)
    console.print(f"created {new.key.kind} key {new.key.id} ({new.key.name}):")
    out.print(new.token)


@app.command("list")
def keys_list(db: DbOption = DEFAULT_DB) -> None:
    """Every key with its kind and state (never the secret)."""
    with opened(db) as sf:
        keys = sf.key_store().list()
    table = Table("id", "kind", "name", "created", "state")
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        table.add_row(k.id, k.kind, k.name, f"{k.created_at:%Y-%m-%d %H:%M}", state)
    print_table(table)


@app.command("revoke")
def keys_revoke(key_id: str, db: DbOption = DEFAULT_DB) -> None:
    """Revoke a key by id: requests with it get 401 from then on."""
    with opened(db) as sf:
        k = sf.key_store().revoke(key_id)
    console.print(f"revoked {k.kind} key {k.id} ({k.name})")
