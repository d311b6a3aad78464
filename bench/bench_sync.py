"""Sync throughput: ``jobs.sync.run`` against bare pymongo on the same SecantusDB server, one run.

``python -m bench sync`` (or ``python -m bench.bench_sync --rows 200000 --scan-rows 100000``).

Each side runs ``--repeats`` times (3), alternating, and the medians are compared.

1. full sync of N predictions (read Delta, build documents, insert into a new
   collection, verify, point the watermark at it) vs bare ``insert_many`` of the same
   documents (built before the clock starts) into a fresh collection: target >= 0.85x
   the throughput;
2. incremental sync after 5% of the customers changed (read the change feed,
   replace-upsert, verify) vs bare unordered ``ReplaceOne`` upserts of just those
   documents into the served collection: target <= 1.25x the time;
3. ``--scan-rows``: incremental vs full at several changed fractions, to set
   ``mongo.incremental_max_fraction`` (the crossover is printed and saved).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

from pymongo import MongoClient, ReplaceOne
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bench.common import Measurement, Report, timed
from schemas.settings import Settings


def bench_settings(root: Path, *, uri: str, rows: int) -> Settings:
    return Settings(
        data_dir=str(root / "data"),
        lake={"root": str(root / "lake")},  # type: ignore[arg-type]
        spark={"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "6g"},  # type: ignore[arg-type]
        # Replaced collections are dropped by the next sync (no switch back is kept, a
        # grace just over the API's poll): the server holds at most two full copies.
        mongo={  # type: ignore[arg-type]
            "uri": uri,
            "database": f"bench_{rows}",
            "socket_timeout_ms": 600_000,
            "keep_collections": 0,
            "drop_grace_s": 1.5,
        },
        api={"watermark_poll_s": 1.0},  # type: ignore[arg-type]
    )


def write_current(spark: SparkSession, settings: Settings, *, rows: int) -> None:
    from jobs.platform.lake import ensure_table, table_path
    from schemas.tables import PREDICTIONS_CURRENT

    ensure_table(
        spark, settings, PREDICTIONS_CURRENT, properties={"delta.enableChangeDataFeed": "true"}
    )
    frame = spark.range(rows).select(
        F.format_string("C%09d", "id").alias("customer_id"),
        F.lit("purchase_30d").alias("model_name"),
        F.lit("1").alias("model_version"),
        F.rand(1).alias("score"),
        F.lit(dt.date(1998, 1, 1)).alias("score_date"),
        F.current_timestamp().alias("scored_at"),
        F.lit("bench").alias("run_id"),
        F.lit(1).cast("bigint").alias("feature_table_version"),
    )
    frame.write.format("delta").mode("append").save(table_path(settings, PREDICTIONS_CURRENT))


def rescore(spark: SparkSession, settings: Settings, *, fraction: float, seed: int) -> list[str]:
    """New scores for about ``fraction`` of the customers (MERGE); returns their ids."""
    from delta.tables import DeltaTable

    from jobs.platform.lake import read_table, table_path
    from schemas.tables import PREDICTIONS_CURRENT

    current = read_table(spark, settings, PREDICTIONS_CURRENT)
    changed = current.where(F.rand(seed) < fraction).withColumn("score", F.rand(seed + 1))
    changed = changed.withColumn("model_version", F.lit(str(seed))).cache()
    ids = [r.customer_id for r in changed.select("customer_id").collect()]
    target = DeltaTable.forPath(spark, table_path(settings, PREDICTIONS_CURRENT))
    (
        target.alias("t")
        .merge(changed.alias("s"), "t.customer_id = s.customer_id AND t.model_name = s.model_name")
        .whenMatchedUpdateAll()
        .execute()
    )
    changed.unpersist()
    return ids


def documents(
    spark: SparkSession, settings: Settings, ids: list[str] | None
) -> list[dict[str, Any]]:
    """The serving documents of ``ids`` (all customers when None), built before any clock runs."""
    from jobs.platform.lake import table_version
    from jobs.sync.changes import rows_of, snapshot
    from jobs.sync.documents import iter_documents
    from schemas.tables import PREDICTIONS_CURRENT

    table = snapshot(spark, settings, version=table_version(spark, settings, PREDICTIONS_CURRENT))
    if ids is not None:
        table = rows_of(table, ids)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return list(iter_documents(table, delta_version=-1, synced_at=now))


def bare_upserts(coll: Any, docs: list[dict[str, Any]], *, batch: int) -> None:
    for start in range(0, len(docs), batch):
        ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs[start : start + batch]]
        coll.bulk_write(ops, ordered=False)


def run(
    *, rows: int, changed: float, scan_rows: int, scan: list[float], repeats: int = 3
) -> Report:
    from jobs.platform.local_mongo import start_server
    from jobs.platform.spark import get_spark
    from tests.conftest import free_port

    report = Report(benchmark="sync" if rows else "sync_threshold")
    report.notes.update(rows=rows, changed_fraction=changed, cpus=os.cpu_count())
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        port = free_port()
        # On disk, as a deployed store is: the in-memory engine's fixed cache filled up
        # ("internal server error") with two 1M-document collections and the bare ones.
        server = start_server(
            port=port, storage_path=str(Path(tmp) / "mongo"), log_path=Path(tmp) / "mongo.log"
        )
        uri = f"mongodb://127.0.0.1:{port}/"
        client: MongoClient[dict[str, Any]] = MongoClient(uri, socketTimeoutMS=600_000)
        try:
            spark = get_spark(bench_settings(Path(tmp), uri=uri, rows=rows))
            if rows:
                main_comparisons(
                    spark,
                    report,
                    client,
                    Path(tmp),
                    uri=uri,
                    rows=rows,
                    changed=changed,
                    repeats=repeats,
                )
            if scan_rows:
                client.drop_database(f"bench_{rows}")
                report.notes["scan"] = scan_threshold(spark, Path(tmp), uri, scan_rows, scan)
        finally:
            client.close()
            server.terminate()
            server.wait(timeout=30)
    return report


def main_comparisons(
    spark: SparkSession,
    report: Report,
    client: MongoClient[dict[str, Any]],
    root: Path,
    *,
    uri: str,
    rows: int,
    changed: float,
    repeats: int,
) -> None:
    from jobs.sync.run import sync
    from jobs.sync.state import active_collection

    settings = bench_settings(root, uri=uri, rows=rows)
    write_current(spark, settings, rows=rows)
    db = client[settings.mongo.database]

    docs = documents(spark, settings, None)
    bare_s, full_s, phases = [], [], []
    for i in range(repeats):
        db.drop_collection(f"bare{i}")
        bare_s.append(
            timed(
                "bare", rows, functools.partial(db[f"bare{i}"].insert_many, docs, ordered=False)
            ).seconds
        )
        db.drop_collection(f"bare{i}")
        full = sync(spark, settings, mode="full")
        full_s.append(full.seconds)
        phases.append(full.phases)
    del docs
    report.notes["full_phases_s"] = phases
    report.notes["full_runs_s"] = {"bare": bare_s, "sync": full_s}
    bare = report.add(
        Measurement(name="bare insert_many (median)", seconds=median(bare_s), rows=rows)
    )
    ours = report.add(Measurement(name="sync full (median)", seconds=median(full_s), rows=rows))
    report.ratio("full sync / bare insert_many (target >= 0.85)", ours, bare)

    base_s, inc_s, inc_phases = [], [], []
    n = 0
    for i in range(repeats):
        # The baseline upserts the changed documents into the served collection, as the sync does.
        ids = rescore(spark, settings, fraction=changed, seed=7 + i)
        docs = documents(spark, settings, ids)
        n = len(docs)
        served = db[active_collection(db, collection=settings.mongo.collection)]
        base_s.append(
            timed("bare", n, functools.partial(bare_upserts, served, docs, batch=5000)).seconds
        )
        inc = sync(spark, settings)
        assert inc.mode == "incremental", inc.reason
        inc_s.append(inc.seconds)
        inc_phases.append(inc.phases)
    report.notes["incremental_phases_s"] = inc_phases
    report.notes["incremental_runs_s"] = {"bare": base_s, "sync": inc_s}
    base = report.add(
        Measurement(name="bare ReplaceOne upserts (median)", seconds=median(base_s), rows=n)
    )
    ours = report.add(Measurement(name="sync incremental (median)", seconds=median(inc_s), rows=n))
    ratio = report.ratio("incremental sync / bare upserts", ours, base)
    report.notes["incremental_time_ratio"] = 1 / ratio


def _without_drop(result: Any) -> float:
    return float(result.seconds - result.phases.get("drop_replaced", 0.0))


def scan_threshold(
    spark: SparkSession, root: Path, uri: str, rows: int, fractions: list[float]
) -> dict[str, Any]:
    """Seconds of an incremental and of a full sync after each fraction of customers changed."""
    from jobs.sync.run import sync

    settings = bench_settings(root / "scan", uri=uri, rows=rows)
    write_current(spark, settings, rows=rows)
    sync(spark, settings, mode="full")
    out: dict[str, Any] = {"rows": rows, "points": []}
    crossover = None
    for i, fraction in enumerate(fractions):
        # Without the drop of a replaced collection (its phase): a sync pays it whatever
        # its mode, once the collection a full sync replaced is past its grace.
        rescore(spark, settings, fraction=fraction, seed=100 + 2 * i)
        inc = _without_drop(sync(spark, settings, mode="incremental"))
        rescore(spark, settings, fraction=fraction, seed=101 + 2 * i)
        full = _without_drop(sync(spark, settings, mode="full"))
        print(f"  scan {fraction:5.0%} changed: incremental {inc:7.2f} s, full {full:7.2f} s")
        out["points"].append({"fraction": fraction, "incremental_s": inc, "full_s": full})
        if crossover is None and inc > full:
            crossover = fraction
    out["first_fraction_where_full_wins"] = crossover
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scan-rows", type=int, default=0, help="0: no threshold scan")
    parser.add_argument("--scan", default="0.05,0.1,0.2,0.3,0.4,0.6")
    args, _ = parser.parse_known_args(argv)
    scan = [float(x) for x in args.scan.split(",")]
    report = run(
        rows=args.rows,
        changed=args.changed,
        scan_rows=args.scan_rows,
        scan=scan,
        repeats=args.repeats,
    )
    path = report.print_and_save()
    for key in ("full_runs_s", "full_phases_s", "incremental_runs_s", "incremental_phases_s"):
        if key in report.notes:
            print(f"  {key}: {report.notes[key]}")
    if "incremental_time_ratio" in report.notes:
        ratio = report.notes["incremental_time_ratio"]
        print(f"  incremental time ratio (target <= 1.25): {ratio:.2f}x")
    if "scan" in report.notes:
        scan = report.notes["scan"]
        print(
            f"  scan of {scan['rows']:,} rows: full first wins at "
            f"{scan['first_fraction_where_full_wins']} changed "
            "(mongo.incremental_max_fraction should sit below it)"
        )
    print(f"  results: {path}")


if __name__ == "__main__":
    main()
