"""Validation cost: the gold contract against the gold partition's build time.

``python -m bench contracts`` (scale: ``LAKESCORE_BENCH_CUSTOMERS``, default 200,000).
Builds one gold partition, then times:

- ``check_contract``: the whole gold contract (every expectation, the column set and the
  row-count change) as one Spark aggregation validated by GX on a one-row summary;
- the same with Data Docs built (what the nightly asset check runs);
- ``validate``: GX's own Spark engine on the 4 core expectations only (the reference).

The target is the contract check at most 30% of the partition's build time.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

from pyspark.sql import functions as F

from bench.bench_features import AS_OF, prepare
from bench.common import Report, timed


def run(*, customers: int, workdir: Path) -> Report:
    from jobs.features.build import build_customer_features
    from jobs.lakehouse.contracts import check_contract, validate
    from jobs.platform.lake import read_table
    from schemas.contracts import GOLD_CUSTOMER_FEATURES, GOLD_CUSTOMER_FEATURES_CORE
    from schemas.tables import CUSTOMER_FEATURES

    lake = prepare(customers=customers, workdir=workdir)
    spark, settings = lake.spark, lake.settings
    report = Report(benchmark="contracts")
    build_customer_features(spark, settings, as_of=AS_OF - dt.timedelta(days=1))  # warm-up
    result = build_customer_features(spark, settings, as_of=AS_OF)
    rows = result.customers
    build = report.add(
        timed(
            "gold partition build",
            rows,
            lambda: build_customer_features(spark, settings, as_of=AS_OF),
            repeat=2,
        )
    )
    gold = read_table(spark, settings, CUSTOMER_FEATURES).where(F.col("as_of_date") == AS_OF)
    check_contract(gold, contract=GOLD_CUSTOMER_FEATURES)  # warm-up: GX imports
    outcome = check_contract(gold, contract=GOLD_CUSTOMER_FEATURES, previous_rows=rows)
    assert outcome.success, outcome.summary()
    fast = report.add(
        timed(
            f"check_contract ({len(outcome.outcomes)} expectations)",
            rows,
            lambda: check_contract(gold, contract=GOLD_CUSTOMER_FEATURES, previous_rows=rows),
            repeat=2,
        )
    )
    docs = report.add(
        timed(
            "check_contract + Data Docs",
            rows,
            lambda: check_contract(
                gold,
                contract=GOLD_CUSTOMER_FEATURES,
                previous_rows=rows,
                docs_dir=workdir / "docs",
            ),
        )
    )
    core = len(GOLD_CUSTOMER_FEATURES_CORE.expectations)
    spark_engine = report.add(
        timed(
            f"GX Spark engine ({core} expectations)",
            rows,
            lambda: validate(gold, contract=GOLD_CUSTOMER_FEATURES_CORE),
        )
    )
    report.ratio("check_contract throughput vs GX Spark engine", fast, spark_engine)
    report.notes.update(
        customers=customers,
        gold_rows=rows,
        check_share_of_build=fast.seconds / build.seconds,
        check_with_docs_share_of_build=docs.seconds / build.seconds,
        gx_spark_share_of_build=spark_engine.seconds / build.seconds,
        target_share=0.30,
    )
    return report


def main() -> None:
    customers = int(os.environ.get("LAKESCORE_BENCH_CUSTOMERS", "200000"))
    with tempfile.TemporaryDirectory(prefix="bench-contracts-") as tmp:
        report = run(customers=customers, workdir=Path(tmp))
        report.print_and_save()
        for key in (
            "check_share_of_build",
            "check_with_docs_share_of_build",
            "gx_spark_share_of_build",
        ):
            print(f"  {key}: {report.notes[key]:.0%} (target <= 30%)")


if __name__ == "__main__":
    main()
