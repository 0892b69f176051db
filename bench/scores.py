"""Value scores refresh benchmark: RFM + engagement + BG/NBD + Gamma-Gamma for 1M customers.

    .venv/bin/python bench/scores.py --customers 1000000 --days 120

* generates the demo shop (cached under bench-data/), bulk-loads it into the store
  schema straight from Parquet (identities resolved through identify calls, event names
  numbered as the store does; the ingest path is bypassed to keep the run near 10 min);
* times ``refresh_scores`` as of the shop's end: one DuckDB aggregate query for the
  features, vectorised NumPy/SciPy for the models, one bulk write of the traits; run
  twice (the second run also clears keys against the history of the first);
* baseline, same process, same summaries: the ``lifetimes`` package doing the same model
  work (BG/NBD fit on the same collapsed summaries with weights, Gamma-Gamma fit,
  P(alive), expected orders 30/90 days, 12-month discounted CLV), against segflow's
  model step;
* the churn classifier on a smaller 365-day shop: holdout AUC vs P(alive) alone.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.demo.generator import generate_shop  # noqa: E402
from segflow.store.duckdb.schema import DDL  # noqa: E402
from segflow.store.duckdb.scores import DuckDBScores  # noqa: E402
from segflow.traits.features import extract_features  # noqa: E402
from segflow.traits.refresh import ScoresConfig, compute_scores, refresh_scores  # noqa: E402

END = datetime(2026, 11, 1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(data: Path, customers: int, days: int, seed: int) -> Path:
    """Generate the shop and load it into a store-schema DuckDB file (both cached)."""
    db = data / "scores.duckdb"
    if db.exists():
        return db
    started = time.perf_counter()
    shop = generate_shop(data, customers=customers, seed=seed, end=END, days=days)
    print(f"generated {shop.events:,} events in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    tmp = data / "scores.duckdb.partial"
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in shop.paths)
    con.execute(f"CREATE TEMP VIEW raw AS SELECT * FROM read_parquet([{files}])")
    described = con.execute("DESCRIBE raw").fetchall()
    fields = [(str(r[0]), str(r[1])) for r in described if "." in str(r[0])]
    event_fields = [(c, t) for c, t in fields if not c.startswith("traits.")]
    con.execute(
        """CREATE TEMP TABLE idmap AS SELECT anonymous_id, min(user_id) AS user_id FROM raw
           WHERE user_id IS NOT NULL AND anonymous_id IS NOT NULL GROUP BY anonymous_id"""
    )
    con.execute(
        """CREATE TABLE event_names AS SELECT name, row_number() OVER (ORDER BY name)::INTEGER
           AS code FROM (SELECT DISTINCT event AS name FROM raw WHERE event IS NOT NULL)"""
    )
    kinds = {"BIGINT": "DOUBLE", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN"}
    typed = ", ".join(
        f'CAST(r."{c}" AS {kinds.get(t, "VARCHAR")}) AS "{c}"' for c, t in event_fields
    )
    con.execute(
        f"""CREATE TABLE events AS
            SELECT message_id, row_number() OVER () AS seq, type, event, r.user_id,
                   r.anonymous_id, NULL::VARCHAR AS previous_id, NULL::VARCHAR AS group_id,
                   coalesce(r.user_id, m.user_id, r.anonymous_id) AS profile_id,
                   "timestamp", NULL::TIMESTAMP AS received_at, NULL::TIMESTAMP AS sent_at,
                   NULL::JSON AS extra, {typed}, n.code AS event_code
            FROM raw r LEFT JOIN idmap m USING (anonymous_id)
            LEFT JOIN event_names n ON n.name = r.event"""
    )
    con.execute(DDL)
    con.executemany(
        "INSERT INTO field_catalog VALUES (?, ?, false)",
        [(c, kinds.get(t, "VARCHAR")) for c, t in event_fields],
    )
    con.execute(
        """INSERT INTO profiles SELECT profile_id, min("timestamp"), max("timestamp")
           FROM events GROUP BY profile_id"""
    )
    con.execute("CHECKPOINT")
    con.close()
    tmp.rename(db)
    print(f"loaded into the store schema in {time.perf_counter() - started:.1f}s")
    return db


def lifetimes_baseline(con: duckdb.DuckDBPyConnection, cfg: ScoresConfig) -> dict[str, float]:
    """The same model work done by ``lifetimes`` on the same feature arrays."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes
        import pandas as pd

    f = extract_features(DuckDBScores(con), END)
    cust = f.customers
    x, t, T, m = f.x[cust], f.t_x[cust], f.T[cust], f.m[cust]
    out: dict[str, float] = {}

    started = time.perf_counter()
    uniq, counts = np.unique(np.stack([x, t, T], axis=1), axis=0, return_counts=True)
    bgf = lifetimes.BetaGeoFitter()
    bgf.fit(uniq[:, 0], uniq[:, 1], uniq[:, 2], weights=counts)
    out["bg_fit_s"] = time.perf_counter() - started
    rep = (x >= 1) & (m > 0)
    t0 = time.perf_counter()
    ggf = lifetimes.GammaGammaFitter()
    ggf.fit(pd.Series(x[rep]), pd.Series(m[rep]))
    out["gg_fit_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bgf.conditional_probability_alive(x, t, T)
    for h in (30, 90):
        bgf.conditional_expected_number_of_purchases_up_to_time(h, x, t, T)
    clv = ggf.customer_lifetime_value(
        bgf,
        pd.Series(x),
        pd.Series(t),
        pd.Series(T),
        pd.Series(np.where(x > 0, m, 0.0)),
        time=12,
        freq="D",
        discount_rate=(1 + cfg.clv.annual_discount) ** (1 / 12) - 1,
    )
    out["predict_s"] = time.perf_counter() - t0
    out["total_s"] = time.perf_counter() - started
    out["r"], out["alpha"], out["a"], out["b"] = (bgf.params_[k] for k in ("r", "alpha", "a", "b"))
    out["p"], out["q"], out["v"] = (ggf.params_[k] for k in ("p", "q", "v"))
    out["clv_mean"] = float(np.mean(clv))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=120, help="days of history (shop default 365)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data")
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: default)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the lifetimes baseline")
    ap.add_argument("--auc-customers", type=int, default=20_000, help="0: skip the AUC part")
    args = ap.parse_args()

    data = args.data / f"scores-{args.customers}-{args.days}d-{args.seed}"
    data.mkdir(parents=True, exist_ok=True)
    db = build(data, args.customers, args.days, args.seed)
    con = duckdb.connect(str(db))
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    con.execute("DELETE FROM traits WHERE message_id LIKE 'scores/%'")
    con.execute("DROP TABLE IF EXISTS score_runs")
    n_events = con.execute("SELECT count(*) FROM events").fetchone()
    threads = con.execute("SELECT current_setting('threads')").fetchone()
    assert n_events is not None and threads is not None
    print(
        f"shop: {args.customers:,} customers, {args.days} days of history ending {END:%Y-%m-%d} "
        f"(shortened from 365 to keep the bench near 10 min), {n_events[0]:,} events; "
        f"DuckDB threads {threads[0]}"
    )
    cfg = ScoresConfig(classifier=False)
    reports = []
    cpus: list[float] = []
    for run in (1, 2):
        at = END if run == 1 else END + timedelta(seconds=1)
        cpu = time.process_time()
        load = os.getloadavg()[0]
        r = refresh_scores(DuckDBScores(con), at, cfg)
        cpu = time.process_time() - cpu
        cpus.append(cpu)
        reports.append(r)
        s = r.seconds
        print(
            f"refresh {run}: {s['total']:.2f}s wall = features {s['features']:.2f}s "
            f"(one aggregate query) + models {s['models']:.2f}s + write {s['write']:.2f}s "
            f"(build {s['write_build']:.2f}s, clear {s['write_clear']:.2f}s, insert "
            f"{s['write_insert']:.2f}s); process CPU {cpu:.1f}s; 1-min load average before "
            f"{load:.1f} on {os.cpu_count()} cores; {r.profiles:,} profiles, "
            f"{r.customers:,} customers, {r.traits_written:,} trait rows written, "
            f"{r.traits_cleared:,} cleared"
        )
    first = reports[0]
    assert first.bgnbd is not None and first.gamma_gamma is not None
    print(
        "  BG/NBD "
        + ", ".join(f"{k}={v:.4g}" for k, v in first.bgnbd.params.items())
        + f" ({first.bgnbd.fit.n:,} customers, fit {first.bgnbd.fit.seconds:.2f}s); "
        + "Gamma-Gamma "
        + ", ".join(f"{k}={v:.4g}" for k, v in first.gamma_gamma.params.items())
        + f" ({first.gamma_gamma.fit.n:,} repeat buyers, fit {first.gamma_gamma.fit.seconds:.2f}s)"
    )
    target = "met" if first.seconds["total"] < 30 else "MISSED"
    print(
        f"target: refresh under 30 s -> {target} on wall time ({first.seconds['total']:.2f}s; "
        f"process CPU {cpus[0]:.1f}s for 2 threads, so about {cpus[0] / 2:.1f}-{cpus[0]:.1f}s "
        "on 2 idle cores)"
    )

    if not args.no_baseline:
        f = extract_features(DuckDBScores(con), END)
        started = time.perf_counter()
        compute_scores(f, cfg)
        ours = time.perf_counter() - started
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):  # segflow's fitters run this way too
            base = lifetimes_baseline(con, cfg)
        print(
            f"baseline lifetimes 0.11.3, same summaries, same model work: {base['total_s']:.2f}s "
            f"(BG/NBD fit {base['bg_fit_s']:.2f}s, Gamma-Gamma fit {base['gg_fit_s']:.2f}s, "
            f"predictions {base['predict_s']:.2f}s) vs segflow model step {ours:.2f}s "
            f"(which also does RFM, engagement, tiers, lifecycle): "
            f"lifetimes/segflow = {base['total_s'] / ours:.1f}x"
        )
        print(
            "  lifetimes parameters: "
            + ", ".join(f"{k}={base[k]:.4g}" for k in ("r", "alpha", "a", "b", "p", "q", "v"))
        )
    con.close()

    if args.auc_customers:
        auc_data = args.data / f"scores-{args.auc_customers}-365d-{args.seed}"
        auc_data.mkdir(parents=True, exist_ok=True)
        adb = build(auc_data, args.auc_customers, 365, args.seed)
        acon = duckdb.connect(str(adb))
        acon.execute("DELETE FROM traits WHERE message_id LIKE 'scores/%'")
        r = refresh_scores(DuckDBScores(acon), END, ScoresConfig(classifier=True))
        acon.close()
        c = r.classifier
        if c is None:
            print(f"classifier skipped: {r.classifier_note}")
        else:
            print(
                f"churn classifier ({args.auc_customers:,}-customer 365-day shop, horizon "
                f"{c.horizon_days} days, train {c.n_train:,} / holdout {c.n_test:,} customers, "
                f"{c.positive_rate_test:.1%} bought in the holdout window): AUC {c.auc:.3f} vs "
                f"P(alive) alone {c.baseline_auc_p_alive:.3f} and BG/NBD expected orders "
                f"{c.baseline_auc_expected_orders:.3f}; classifier step "
                f"{r.seconds['classifier']:.1f}s"
            )
    print(f"peak RSS {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
