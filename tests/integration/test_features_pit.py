"""Point-in-time features: exact values, no leakage from orders on or after the as-of date, backfill."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import statistics
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.features.build import build_feature_backfill, compute_customer_features
from jobs.platform.lake import ensure_table, read_table, table_path
from schemas.features import FEATURE_NAMES, PROFILE_FEATURE_NAMES
from schemas.settings import Settings
from schemas.tables import CUSTOMER_FEATURES, SILVER_CUSTOMERS, SILVER_ORDERS

pytestmark = pytest.mark.integration

AS_OF = dt.date(2024, 3, 1)
ORDERS = [  # order_id, customer_id, order_date, quantity, amount
    ("a1", "A", dt.date(2024, 2, 29), 1, 10.0),  # the day before: recency 1
    ("a2", "A", dt.date(2024, 2, 20), 3, 30.0),
    ("a3", "A", dt.date(2024, 2, 20), 1, 5.0),  # same day as a2: one order day, two orders
    ("a4", "A", dt.date(2023, 12, 1), 2, 20.0),
    ("b1", "B", dt.date(2023, 1, 10), 1, 100.0),  # one order, more than 365 days ago
    ("c1", "C", AS_OF, 1, 999.0),  # on the as-of date: must not count
]
LATE = [  # orders on/after the as-of date, for the leakage test
    ("a9", "A", AS_OF, 5, 500.0),
    ("a10", "A", dt.date(2024, 3, 15), 5, 500.0),
    ("d1", "D", dt.date(2024, 4, 1), 1, 1.0),
]
SCHEMA = "order_id STRING, customer_id STRING, order_date DATE, quantity INT, amount DOUBLE"


def _orders(spark: Any, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA)


def _rows(frame: DataFrame) -> dict[str, dict[str, Any]]:
    return {r["customer_id"]: r.asDict() for r in frame.collect()}


def test_features_are_exact_for_a_hand_checked_history(spark: Any) -> None:
    got = _rows(compute_customer_features(_orders(spark, ORDERS), as_of=AS_OF))
    assert set(got) == {"A", "B"}  # C ordered only on the as-of date
    a, b = got["A"], got["B"]
    assert (a["recency_days"], a["tenure_days"]) == (1, 91)
    assert (a["frequency_7d"], a["frequency_30d"], a["frequency_90d"]) == (1, 3, 3)
    assert (a["frequency_365d"], a["frequency_all"], a["order_days_all"]) == (4, 4, 3)
    assert a["monetary_30d"] == pytest.approx(45.0)
    assert a["avg_basket_amount"] == pytest.approx(65.0 / 4)
    assert a["ipi_mean_days"] == pytest.approx(45.0)  # gaps 81 and 9 between order days
    assert a["ipi_std_days"] == pytest.approx(36.0)
    assert a["overdue_ratio"] == pytest.approx(1 / 45)
    assert a["frequency_trend_30d_365d"] == pytest.approx(4 / (4 * 30 / 365 + 1))
    assert b["frequency_365d"] == 0 and b["monetary_365d"] == 0.0
    assert b["ipi_mean_days"] is None and b["overdue_ratio"] is None
    assert all(a[name] is None for name in PROFILE_FEATURE_NAMES)


def test_features_for_d_ignore_orders_on_or_after_d(spark: Any) -> None:
    """The leakage test: adding every later order changes nothing for as-of date D."""
    before = compute_customer_features(_orders(spark, ORDERS), as_of=AS_OF)
    with_future = compute_customer_features(_orders(spark, ORDERS + LATE), as_of=AS_OF)
    assert with_future.exceptAll(before).count() == 0
    assert before.exceptAll(with_future).count() == 0
    later = _rows(
        compute_customer_features(_orders(spark, ORDERS + LATE), as_of=dt.date(2024, 3, 16))
    )
    assert later["A"]["frequency_all"] == 6  # the same code does see them once they are past


def test_profile_attributes_come_from_customers_signed_up_before_d(spark: Any) -> None:
    customers = spark.createDataFrame(
        [
            ("A", dt.date(2023, 11, 1), "US", "email", "mobile"),
            ("B", dt.date(2024, 5, 1), "DE", "social", "tablet"),  # signed up after D
        ],
        "customer_id STRING, signup_date DATE, country STRING, channel STRING, device STRING",
    )
    got = _rows(compute_customer_features(_orders(spark, ORDERS), as_of=AS_OF, customers=customers))
    assert (got["A"]["country"], got["A"]["channel"], got["A"]["signup_tenure_days"]) == (
        "US",
        "email",
        121,
    )
    assert got["B"]["country"] is None
    assert set(FEATURE_NAMES).isdisjoint(PROFILE_FEATURE_NAMES)


def test_backfill_writes_one_file_per_partition_and_reuses_existing(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    local = settings.model_copy(
        update={"lake": settings.lake.model_copy(update={"root": str(tmp_path / "lake")})}
    )
    ensure_table(spark, local, SILVER_ORDERS)
    _orders(spark, ORDERS + LATE).withColumn("batch_id", F.lit("t")).write.format("delta").mode(
        "append"
    ).save(table_path(local, SILVER_ORDERS))
    ensure_table(spark, local, SILVER_CUSTOMERS)
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=7 * i) for i in range(5)]
    first = build_feature_backfill(spark, local, as_of_dates=dates[:3])
    second = build_feature_backfill(spark, local, as_of_dates=dates)
    assert (first.built, second.built, second.skipped) == (dates[:3], dates[3:], dates[:3])
    table = read_table(spark, local, CUSTOMER_FEATURES)
    files = table.select(F.input_file_name().alias("f"), "as_of_date").distinct()
    per_partition = files.groupBy("as_of_date").count().collect()
    assert len(per_partition) == 5 and {r["count"] for r in per_partition} == {1}
    single = _rows(compute_customer_features(_orders(spark, ORDERS + LATE), as_of=dates[4]))
    stored = _rows(table.where(F.col("as_of_date") == dates[4]).drop("as_of_date"))
    assert {
        k: {c: v for c, v in r.items() if c != "as_of_date"} for k, r in single.items()
    } == stored
    # No dictionary for ids and measures (jobs.features.build.WRITE_CONF; the parquet default would
    # give every column one). The profile's categories keep theirs, when they have values.
    import pyarrow.parquet as pq

    chunks = pq.ParquetFile(table.inputFiles()[0].removeprefix("file:")).metadata.row_group(0)
    dictionary = {
        chunks.column(i).path_in_schema
        for i in range(chunks.num_columns)
        if any("DICTIONARY" in e for e in chunks.column(i).encodings)
    }
    assert chunks.num_columns > 20 and not dictionary & {"customer_id", *FEATURE_NAMES}


def test_interval_statistics_match_a_list_of_distinct_order_days(spark: Any) -> None:
    """Gaps from the window (same-day orders give gap 0) equal those of the sorted distinct days."""
    rng = random.Random(7)
    rows = []
    for c in range(40):
        for k in range(rng.randint(1, 12)):  # repeated days on purpose: few distinct days
            day = dt.date(2023, 1, 1) + dt.timedelta(days=rng.choice([0, 3, 4, 30, 200, 380]) + c)
            rows.append((f"o{c}-{k}", f"c{c:02d}", day, 1, 1.0))
    got = _rows(compute_customer_features(_orders(spark, rows), as_of=AS_OF))
    assert len(got) == 40  # every order is before the as-of date
    for cid, r in got.items():
        days = sorted({(AS_OF - row[2]).days for row in rows if row[1] == cid})
        gaps = [b - a for a, b in itertools.pairwise(days)]
        assert r["order_days_all"] == len(days)
        if not gaps:
            assert r["ipi_mean_days"] is None and r["ipi_std_days"] is None
            continue
        assert r["ipi_mean_days"] == pytest.approx(statistics.fmean(gaps))
        assert r["ipi_std_days"] == pytest.approx(statistics.pstdev(gaps), abs=1e-9)
