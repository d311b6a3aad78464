"""``python -m bench sql``: analysts' queries on ``predictions.history``, DuckDB through
delta-rs (``lakescore sql``) against Spark SQL on the same Delta table, same run.

The table is ``--customers`` x ``--nights`` champion rows written night by night with
delta-rs in the real table's columns and partitioning (``score_date``), each night's rows
sorted by customer in a few files (one append per customer range, as scoring writes a
night from the feature partition's files). Two queries, each the median of ``--repeat``
runs after a warm-up: one customer's history, and a daily aggregate by model version;
both engines' answers are checked equal first. Ratios are throughput against Spark SQL
(above 1: DuckDB is faster). File skipping: the share of the table's files the
per-customer query opens, i.e. the fragments of the delta-rs dataset that the customer
filter keeps by partition and the log's min/max statistics (DuckDB pushes the filter into
that scan), checked against the log's statistics directly.
``python -m bench sql [--customers 1000000] [--nights 30] [--files-per-night 4]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.common import Measurement, Report
from schemas.tables import PREDICTIONS_HISTORY

FIRST_NIGHT = dt.date(1998, 1, 1)
CUSTOMER = "C0000042"
QUERIES = {
    "one customer's history": (
        "SELECT score_date, model_version, score FROM predictions.history "
        f"WHERE customer_id = '{CUSTOMER}' ORDER BY score_date"
    ),
    "daily aggregate by model version": (
        "SELECT score_date, model_version, count(*) AS n, avg(score) AS mean_score "
        "FROM predictions.history GROUP BY score_date, model_version ORDER BY 1, 2"
    ),
}


def write_history(path: str, *, customers: int, nights: int, files_per_night: int) -> int:
    from deltalake import write_deltalake

    ids = pa.array([f"C{i:07d}" for i in range(customers)])
    rng = np.random.default_rng(7)
    for night in range(nights):
        day = FIRST_NIGHT + dt.timedelta(days=night)
        table = pa.table(
            {
                "customer_id": ids,
                "model_name": pa.array(["purchase_30d"] * customers),
                "model_version": pa.array([str(1 + night // 10)] * customers),
                "model_role": pa.array(["champion"] * customers),
                "score": pa.array(rng.random(customers)),
                "score_date": pa.array([day] * customers, pa.date32()),
                "scored_at": pa.array(
                    [dt.datetime.combine(day, dt.time(2), tzinfo=dt.UTC)] * customers,
                    pa.timestamp("us", tz="UTC"),  # Delta's TIMESTAMP, as Spark writes it
                ),
                "run_id": pa.array([f"run-{night}"] * customers),
                "feature_table_version": pa.array([night] * customers, pa.int64()),
            }
        )
        assert table.column_names == PREDICTIONS_HISTORY.columns
        step = max(1, -(-customers // files_per_night))
        for start in range(0, customers, step):  # one file per customer range, as sorted
            write_deltalake(
                path,
                table.slice(start, step),
                mode="append",
                partition_by=list(PREDICTIONS_HISTORY.partition_by),
            )
    return customers * nights


def file_share(path: str, customer: str) -> tuple[int, int]:
    """(files the per-customer scan opens, all files): the fragments of the delta-rs
    dataset (what DuckDB scans) that the customer filter keeps, each fragment carrying its
    partition values and the log's min/max statistics. Checked against the log itself."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(path)
    dataset = table.to_pyarrow_dataset()
    kept = len(list(dataset.get_fragments(filter=pc.field("customer_id") == customer)))
    total = len(list(dataset.get_fragments()))
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    low, high = "min.customer_id", "max.customer_id"
    allowed = sum(
        1 for a in actions if a.get(low) is None or a[low] <= customer <= (a.get(high) or "")
    )
    assert (kept, total) == (allowed, len(actions)), ((kept, total), (allowed, len(actions)))
    return kept, total


def same_answer(duck: pa.Table, spark_rows: list[Any]) -> bool:
    """The two engines' rows are equal (floats to 9 digits; both queries order their rows)."""

    def plain(row: Any) -> tuple[Any, ...]:
        return tuple(round(v, 9) if isinstance(v, float) else v for v in row)

    return [plain(r.values()) for r in duck.to_pylist()] == [plain(r) for r in spark_rows]


def median_seconds(fn: Callable[[], Any], *, repeat: int) -> float:
    fn()  # warm-up: imports, JIT, the file system cache
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def run(*, customers: int, nights: int, repeat: int, files_per_night: int) -> Report:
    from cli.lake_sql import run_sql
    from jobs.platform.catalog import register_catalog
    from jobs.platform.spark import get_spark
    from schemas.settings import LakeSettings, Settings

    report = Report(benchmark="sql")
    report.notes.update(
        customers=customers, nights=nights, repeat=repeat, cpus=os.cpu_count(), customer=CUSTOMER
    )
    with tempfile.TemporaryDirectory(prefix="bench-sql-") as tmp:
        settings = Settings(
            lake=LakeSettings(root=str(Path(tmp) / "lake")),
            data_dir=str(Path(tmp) / "data"),
            spark={"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "4g"},  # type: ignore[arg-type]
        )
        path = settings.table_path(PREDICTIONS_HISTORY.name)
        started = time.perf_counter()
        rows = write_history(
            path, customers=customers, nights=nights, files_per_night=files_per_night
        )
        report.notes["write_seconds"] = round(time.perf_counter() - started, 1)
        allowed, files = file_share(path, CUSTOMER)
        report.notes["files_allowed_for_one_customer"] = allowed
        report.notes["files"] = files
        spark = get_spark(settings)
        register_catalog(spark, settings, specs=(PREDICTIONS_HISTORY,))
        for label, query in QUERIES.items():
            duck_answer = run_sql(settings, query=query)
            assert duck_answer.num_rows > 0, label
            assert same_answer(duck_answer, spark.sql(query).collect()), label

            def on_duckdb(q: str = query) -> Any:
                return run_sql(settings, query=q)

            def on_spark(q: str = query) -> Any:
                return spark.sql(q).collect()

            duck = Measurement(
                name=f"duckdb: {label}", seconds=median_seconds(on_duckdb, repeat=repeat), rows=rows
            )
            sparks = Measurement(
                name=f"spark sql: {label}",
                seconds=median_seconds(on_spark, repeat=repeat),
                rows=rows,
            )
            report.add(duck)
            report.add(sparks)
            report.ratio(f"duckdb / spark sql: {label}", duck, sparks)
        spark.stop()
    print(
        f"  file skipping: the per-customer query opens {allowed} of {files} files "
        f"({allowed / files:.1%}); history {customers:,} customers x {nights} nights"
    )
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench sql", description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files-per-night", type=int, default=4)
    args, _ = parser.parse_known_args(argv)
    report = run(
        customers=args.customers,
        nights=args.nights,
        repeat=args.repeat,
        files_per_night=args.files_per_night,
    )
    report.print_and_save()


if __name__ == "__main__":
    main()
