"""Scenario 8, the files the ingestion tests do not cover: an empty file, a header-only file,
a Parquet file with a wrong schema, a CSV file whose columns are in another order (read by
name) and one whose header does not match the source (refused, naming the columns).

Every row read is accounted for (silver + duplicates + quarantine), a file that cannot be
read with the source schema fails the batch before anything is written, and the good
rows already in silver are untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from jobs.lakehouse.ingest import ingest_landing
from jobs.platform.lake import read_table
from schemas.settings import Settings
from schemas.tables import BRONZE_ORDERS, QUARANTINE_ORDERS, SILVER_ORDERS

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SCENARIO = "8 empty / wrong-schema landing files"
HEADER = "order_id,customer_id,order_date,quantity,amount\n"
GOOD = "o1,c1,2024-01-05,1,10.0\no2,c2,2024-01-06,2,20.5\n"


def _counts(spark: Any, s: Settings) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        read_table(spark, s, t).count() for t in (BRONZE_ORDERS, SILVER_ORDERS, QUARANTINE_ORDERS)
    )


@pytest.fixture
def lake(spark: Any, settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    s = settings.model_copy(
        update={"lake": settings.lake.model_copy(update={"root": str(tmp_path / "lake")})}
    )
    orders = tmp_path / "landing" / "orders"
    orders.mkdir(parents=True)
    (orders / "day1.csv").write_text(HEADER + GOOD)
    ingest_landing(spark, s, landing=tmp_path / "landing")  # yesterday's good file
    return s, tmp_path / "landing"


def test_empty_and_header_only_files_add_nothing(
    spark: Any, lake: tuple[Settings, Path], reliability_report: Any
) -> None:
    s, landing = lake
    before = _counts(spark, s)
    (landing / "orders" / "empty.csv").write_text("")
    (landing / "orders" / "header_only.csv").write_text(HEADER)
    [orders, _customers] = ingest_landing(spark, s, landing=landing)
    after = _counts(spark, s)
    reliability_report.record(
        scenario=SCENARIO,
        bad_inputs=2,
        rows_lost=max(0, before[1] - after[1]),
        rows_duplicated=max(0, after[1] - before[1]),
        detail=f"empty + header-only: {orders.rows_read} rows read, counts {before} -> {after}",
    )
    assert orders.rows_read == 0 and orders.accounted
    assert after == before


def test_parquet_with_a_wrong_schema_fails_before_writing(
    spark: Any, lake: tuple[Settings, Path], reliability_report: Any
) -> None:
    s, landing = lake
    before = _counts(spark, s)
    wrong = pd.DataFrame({"order_id": ["o9"], "client": ["c9"], "day": ["2024-01-07"]})
    wrong.to_parquet(landing / "orders" / "wrong.parquet")
    with pytest.raises(ValueError, match=r"orders parquet files .* lack columns") as raised:
        ingest_landing(spark, s, landing=landing)
    after = _counts(spark, s)
    reliability_report.record(
        scenario=SCENARIO,
        bad_inputs=1,
        rows_lost=max(0, before[1] - after[1]),
        rows_duplicated=max(0, after[1] - before[1]),
        detail=f"wrong parquet schema refused: {str(raised.value)[-60:]}",
    )
    assert after == before


def test_csv_with_columns_in_another_order_is_read_by_name(
    spark: Any, lake: tuple[Settings, Path], reliability_report: Any
) -> None:
    s, landing = lake
    before = _counts(spark, s)
    header = "customer_id,order_id,order_date,quantity,amount\n"  # first two swapped
    (landing / "orders" / "swapped.csv").write_text(header + "c7,o7,2024-01-08,1,3.0\n")
    ingest_landing(spark, s, landing=landing)
    silver = {r.order_id: r.customer_id for r in read_table(spark, s, SILVER_ORDERS).collect()}
    swapped = int(silver.get("c7") == "o7")
    reliability_report.record(
        scenario=SCENARIO,
        bad_inputs=1,
        rows_lost=max(0, before[1] - len(silver)) + swapped,  # a swapped row is a lost row
        rows_duplicated=max(0, len(silver) - before[1] - 1),
        detail=(
            f"CSV header in another order read by name: silver o7 -> {silver.get('o7', 'nothing')}"
        ),
    )
    assert swapped == 0, "order c7 with customer o7: the header was ignored"
    assert silver.get("o7") == "c7"


def test_csv_with_an_unknown_header_fails_before_writing(
    spark: Any, lake: tuple[Settings, Path], reliability_report: Any
) -> None:
    s, landing = lake
    before = _counts(spark, s)
    header = "order_id,client,order_date,quantity,amount\n"
    (landing / "orders" / "renamed.csv").write_text(header + "o8,c8,2024-01-09,1,3.0\n")
    with pytest.raises(ValueError, match=r"renamed.csv .* missing columns \['customer_id'\]"):
        ingest_landing(spark, s, landing=landing)
    after = _counts(spark, s)
    reliability_report.record(
        scenario=SCENARIO,
        bad_inputs=1,
        rows_lost=max(0, before[1] - after[1]),
        rows_duplicated=max(0, after[1] - before[1]),
        detail="CSV header with an unknown column refused before writing",
    )
    assert after == before
