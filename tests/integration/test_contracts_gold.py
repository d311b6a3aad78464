"""Data contracts: the one-pass GX check agrees with GX's Spark engine and names what failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.lakehouse.contracts import check_contract, validate
from schemas.contracts import GOLD_CUSTOMER_FEATURES, SILVER_CUSTOMERS

pytestmark = pytest.mark.integration


def _gold(spark: Any, n: int = 200) -> DataFrame:
    """A valid gold partition: every contract column, plausible values."""
    frame = spark.range(n).select(
        "id",
        F.format_string("C%05d", "id").alias("customer_id"),
        F.lit("2024-03-01").cast("date").alias("as_of_date"),
    )
    for name in GOLD_CUSTOMER_FEATURES.columns[2:]:
        if name in ("country", "device"):
            frame = frame.withColumn(name, F.lit(None).cast("string"))
        elif name == "channel":
            frame = frame.withColumn(name, F.lit("email"))
        else:
            frame = frame.withColumn(name, (F.col("id") % 7 + 1).cast("double"))
    for name in ("recency_days", "frequency_all", "tenure_days"):
        frame = frame.withColumn(name, F.col(name).cast("int"))
    return frame.drop("id")


def test_a_valid_partition_passes_and_writes_data_docs(spark: Any, tmp_path: Path) -> None:
    result = check_contract(
        _gold(spark), contract=GOLD_CUSTOMER_FEATURES, previous_rows=190, docs_dir=tmp_path / "docs"
    )
    assert result.success, result.summary()
    assert result.rows == 200
    assert (tmp_path / "docs" / "index.html").exists()
    assert result.docs_path == (tmp_path / "docs" / "index.html").resolve().as_uri()
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert pages, "no validation page in the Data Docs"


def test_failures_name_the_expectation_and_the_row_count_like_gx_spark(spark: Any) -> None:
    good = _gold(spark)
    bad = (
        good.withColumn(
            "recency_days",
            F.when(F.col("customer_id") < "C00005", 0).otherwise(F.col("recency_days")),
        )
        .withColumn("channel", F.when(F.col("customer_id") < "C00003", "fax").otherwise("email"))
        .unionByName(good.where(F.col("customer_id") < "C00002"))  # two duplicated keys
    )
    fast = check_contract(bad, contract=GOLD_CUSTOMER_FEATURES)
    reference = validate(bad, contract=GOLD_CUSTOMER_FEATURES)
    assert not fast.success and not reference.success
    failed = {(f.expectation, f.column): f.unexpected_count for f in fast.failures}
    assert failed == {
        ("ExpectColumnValuesToBeBetween", "recency_days"): 5,
        ("ExpectColumnValuesToBeInSet", "channel"): 3,
        ("ExpectColumnValuesToBeUnique", "customer_id"): 2,  # the extra copies
    }
    reference_failed = {f.column for f in reference.failures}
    assert reference_failed == {"recency_days", "channel", "customer_id"}
    by_column = {f.column: f.unexpected_count for f in reference.failures}
    assert by_column["recency_days"] == 5 and by_column["channel"] == 3
    assert "ExpectColumnValuesToBeBetween(recency_days) failed on 5 of 202 rows" in fast.summary()


def test_row_count_change_and_missing_columns_fail(spark: Any) -> None:
    frame = _gold(spark)
    shrunk = check_contract(frame, contract=GOLD_CUSTOMER_FEATURES, previous_rows=1000)
    assert not shrunk.success
    assert "200 rows vs 1000 in the previous partition (-80%" in shrunk.summary()
    assert check_contract(
        frame, contract=GOLD_CUSTOMER_FEATURES, previous_rows=1000, max_row_count_change=0.9
    ).success
    missing = check_contract(frame.drop("tenure_days"), contract=GOLD_CUSTOMER_FEATURES)
    failed = {(f.expectation, f.column) for f in missing.failures}
    assert ("ExpectTableColumnsToMatchSet", "-tenure_days") in failed
    assert ("ExpectColumnValuesToNotBeNull", "tenure_days") in failed


def test_customers_contract_checks_categories(spark: Any) -> None:
    frame = spark.createDataFrame(
        [
            ("c1", "2023-01-01", "US", "email", "mobile", "b"),
            ("c2", "2023-01-01", "US", "tv", "watch", "b"),
        ],
        "customer_id STRING, signup_date STRING, country STRING, channel STRING, device STRING, batch_id STRING",
    ).withColumn("signup_date", F.col("signup_date").cast("date"))
    result = check_contract(frame, contract=SILVER_CUSTOMERS)
    assert {f.column for f in result.failures} == {"channel", "device"}
