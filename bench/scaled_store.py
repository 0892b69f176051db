"""A large shop store made set-wise: a small generated shop, loaded the ordinary way,
copied ``factor`` times inside DuckDB (new profile and message ids, numbers and seqs;
the same events and traits), clustered by event name and trait key.

Loading 100M generated events through ingestion takes tens of minutes on two cores;
copying a loaded 1M-event store a hundred times is one sorted insert per table.  Each
copy's customers behave like the seed's, which is what timing needs (the per-profile
groups, joins and scans are as many and as large as a generated store's).
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Final

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.demo.generator import generate_shop  # noqa: E402
from segflow.service.handle import Segflow  # noqa: E402

END: Final = datetime(2026, 11, 1)
SUFFIX: Final = "CASE WHEN k = 0 THEN '' ELSE '~' || k END"


def _copy_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    factor: int,
    swap: dict[str, str],
    split: str | None = None,
) -> None:
    """Replace ``table`` by ``factor`` copies of its rows (``swap``: column -> the
    expression of its copy ``k``) under the table's own DDL, inserted one value of
    ``split`` at a time: clustered by it, as the batch evaluator's scans want (a sort
    by profile within each value too would take most of the build's time)."""
    (ddl,) = con.execute(
        "SELECT sql FROM duckdb_tables() WHERE table_name = ?", [table]
    ).fetchone() or ("",)
    cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    select = ", ".join(swap.get(c, f'"{c}"') for c in cols)
    con.execute(ddl.replace(f"CREATE TABLE {table}", f"CREATE TABLE {table}_big", 1))
    parts: list[object] = [None]
    if split is not None:
        found = con.execute(f"SELECT DISTINCT {split} FROM {table} ORDER BY 1").fetchall()
        parts = [r[0] for r in found]
    for part in parts:
        where = "" if split is None else f" WHERE {split} IS NOT DISTINCT FROM $part"
        con.execute(
            f"INSERT INTO {table}_big SELECT {select} FROM {table}, range({factor}) r(k){where}",
            {"part": part} if split is not None else {},
        )
    con.execute(f"DROP TABLE {table}")
    con.execute(f"ALTER TABLE {table}_big RENAME TO {table}")


def scaled_store(data: Path, customers: int, seed_customers: int = 10_000, seed: int = 7) -> Path:
    """The store of ``customers`` (a multiple of ``seed_customers``) under ``data``,
    built when missing."""
    factor = max(1, customers // seed_customers)
    shop = data / f"scaled-{seed_customers}x{factor}-{seed}"
    db = shop / "bench.duckdb"
    if db.exists():
        return db
    started = time.perf_counter()
    shop.mkdir(parents=True, exist_ok=True)
    tmp = shop / "building.duckdb"
    tmp.unlink(missing_ok=True)
    seeded = data / f"seed-{seed_customers}-{seed}.duckdb"  # shared by every factor
    if not seeded.exists():
        summary = generate_shop(shop / "seed", customers=seed_customers, seed=seed, end=END)
        sf = Segflow(shop / "seeding.duckdb")
        sf.ingest(list(summary.paths))
        sf.close()
        (shop / "seeding.duckdb").rename(seeded)
        took = time.perf_counter() - started
        print(f"seed: {summary.events:,} events in {took:.1f}s", flush=True)
    shutil.copyfile(seeded, tmp)
    con = duckdb.connect(str(tmp))
    con.execute("SET memory_limit = '4GB'")
    con.execute(f"SET temp_directory = '{shop / 'spill'}'")
    (n,) = con.execute("SELECT max(profile_no) FROM profiles").fetchone() or (0,)
    (s,) = con.execute("SELECT max(seq) FROM events").fetchone() or (0,)
    (w,) = con.execute("SELECT max(wseq) FROM traits").fetchone() or (0,)
    pid = f"profile_id || {SUFFIX}"
    con.execute("BEGIN TRANSACTION")
    _copy_table(
        con,
        "events",
        factor,
        {
            "profile_id": pid,
            "message_id": f"message_id || {SUFFIX}",
            "user_id": f"user_id || {SUFFIX}",
            "anonymous_id": f"anonymous_id || {SUFFIX}",
            "seq": f"seq + k * {s}",
            "profile_no": f"profile_no + k * {n}",
        },
        "event_code",
    )
    _copy_table(
        con,
        "traits",
        factor,
        {
            "profile_id": pid,
            "message_id": f"message_id || {SUFFIX}",
            "wseq": f"wseq + k * {w}",
            "profile_no": f"profile_no + k * {n}",
        },
        "key",
    )
    _copy_table(con, "profiles", factor, {"profile_id": pid, "profile_no": f"profile_no + k * {n}"})
    _copy_table(con, "identities", factor, {"profile_id": pid, "value": f"value || {SUFFIX}"})
    con.execute(
        "DELETE FROM seq_marks WHERE name IN ('events', 'events_clustered', 'traits_clustered')"
    )
    con.execute(
        "INSERT INTO seq_marks VALUES ('events', $s), ('events_clustered', $s),"
        " ('traits_clustered', $w)",
        {"s": s * factor, "w": w * factor},
    )
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    con.close()
    tmp.rename(db)
    print(f"scaled x{factor} in {time.perf_counter() - started:.1f}s", flush=True)
    return db


if __name__ == "__main__":
    print(scaled_store(ROOT / "bench-data", int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
