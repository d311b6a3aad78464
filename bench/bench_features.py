"""Feature build at scale against a baseline Spark job on the same orders.

``python -m bench features`` (scale: ``LAKESCORE_BENCH_CUSTOMERS``, default 200,000
customers over 730 days, about 20 orders each; 1,000,000 gives about 20 million
orders). Generates landing Parquet files, ingests them (bronze/silver), then times:

- baseline: read silver.orders, one group-by aggregation, write it as Delta;
- features: ``build_customer_features`` for one as-of date (one gold partition);
- backfill: ``build_feature_backfill`` for 4 more as-of dates (one job, one commit).

The target is features at most 3x the baseline's time (``slowdown_vs_baseline``).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bench.common import Measurement, Report, timed
from schemas.settings import Settings

START = dt.date(2023, 1, 1)
DAYS = 730
AS_OF = START + dt.timedelta(days=700)


@dataclass(frozen=True, kw_only=True)
class Lake:
    spark: SparkSession
    settings: Settings
    customers: int
    orders: int
    generate: Measurement
    ingest: Measurement


def prepare(*, customers: int, workdir: Path) -> Lake:
    """Generate landing files and ingest them into a fresh lake under ``workdir``."""
    os.environ["LAKESCORE_LAKE__ROOT"] = str(workdir / "lake")
    os.environ["LAKESCORE_DATA_DIR"] = str(workdir / "data")
    from jobs.lakehouse.ingest import ingest_landing
    from jobs.lakehouse.synthetic import generate
    from jobs.platform.spark import get_spark
    from schemas.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    spark = get_spark(settings)
    gen = generate(customers=customers, days=DAYS, seed=1, out=workdir / "landing", start=START)
    generated = Measurement(name="generate landing files", seconds=gen.seconds, rows=gen.orders)
    began = time.perf_counter()
    results = ingest_landing(spark, settings, landing=workdir / "landing")
    ingest = Measurement(
        name="ingest orders+customers", seconds=time.perf_counter() - began, rows=gen.orders
    )
    assert all(r.accounted for r in results), results
    return Lake(
        spark=spark,
        settings=settings,
        customers=customers,
        orders=gen.orders,
        generate=generated,
        ingest=ingest,
    )


def baseline_job(lake: Lake, out: str) -> None:
    """Read orders, one group-by aggregation, write it: the floor any feature job pays."""
    from jobs.platform.lake import read_table
    from schemas.tables import SILVER_ORDERS

    orders = read_table(lake.spark, lake.settings, SILVER_ORDERS)
    (
        orders.where(F.col("order_date") < F.lit(AS_OF))
        .groupBy("customer_id")
        .agg(F.count(F.lit(1)).alias("n"), F.sum("amount").alias("amount"))
        .write.format("delta")
        .mode("overwrite")
        .save(out)
    )


def run(*, customers: int, workdir: Path) -> Report:
    from jobs.features.build import build_customer_features, build_feature_backfill

    lake = prepare(customers=customers, workdir=workdir)
    settings = lake.settings
    report = Report(benchmark="features")
    report.add(lake.generate)
    report.add(lake.ingest)
    baseline_job(lake, str(workdir / "warmup"))  # JIT and file-system caches, both jobs alike
    base = report.add(
        timed(
            "baseline: read + group-by + write",
            lake.orders,
            lambda: baseline_job(lake, str(workdir / "baseline")),
            repeat=2,
        )
    )
    feats = report.add(
        timed(
            "features: one as-of partition",
            lake.orders,
            lambda: build_customer_features(lake.spark, settings, as_of=AS_OF),
            repeat=2,
        )
    )
    dates = [AS_OF - dt.timedelta(days=7 * i) for i in range(1, 5)]
    back = report.add(
        timed(
            "backfill: 4 more as-of partitions",
            lake.orders * 4,
            lambda: build_feature_backfill(lake.spark, settings, as_of_dates=dates, overwrite=True),
        )
    )
    report.ratio("features throughput vs baseline (>= 0.33 meets 3x)", feats, base)
    report.ratio("backfill per partition vs single build", back, feats)
    report.notes.update(
        customers=customers,
        orders=lake.orders,
        slowdown_vs_baseline=feats.seconds / base.seconds,
        target_slowdown=3.0,
        as_of=AS_OF.isoformat(),
    )
    return report


def main() -> None:
    customers = int(os.environ.get("LAKESCORE_BENCH_CUSTOMERS", "200000"))
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        report = run(customers=customers, workdir=Path(tmp))
        report.print_and_save()
        print(
            f"  features / baseline time: {report.notes['slowdown_vs_baseline']:.2f}x (target <= 3x)"
        )


if __name__ == "__main__":
    main()
