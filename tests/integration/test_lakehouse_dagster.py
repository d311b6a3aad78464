"""Through Dagster: landing files to gold, and a failing gold contract blocks everything downstream."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from jobs.lakehouse.synthetic import generate
from jobs.platform.lake import read_table, table_path
from schemas.settings import Settings, get_settings
from schemas.tables import SILVER_CUSTOMERS, SILVER_ORDERS

pytestmark = pytest.mark.integration

START = dt.date(2023, 1, 1)
SCORE_DATE = dt.date(2023, 11, 1)


@pytest.fixture()
def landing_settings(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The session's settings with this test's own lake and landing folder (set as an operator would)."""
    landing = tmp_path / "landing"
    generate(customers=400, days=400, seed=5, out=landing, start=START, chunk_customers=200)
    monkeypatch.setenv("LAKESCORE_LAKE__ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LAKESCORE_LAKEHOUSE__LANDING_DIR", str(landing))
    monkeypatch.setenv("LAKESCORE_LAKEHOUSE__DATA_DOCS_DIR", str(tmp_path / "docs"))
    monkeypatch.setenv("LAKESCORE_SCHEDULE__STEP_RETRIES", "0")
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def _run(settings: Settings, keys: list[Any]) -> Any:
    from dagster import DagsterInstance

    from pipelines.definitions import NIGHTLY_JOB, build_definitions

    job = build_definitions(settings).resolve_job_def(NIGHTLY_JOB)
    with DagsterInstance.ephemeral() as instance:
        return job.execute_in_process(
            partition_key=SCORE_DATE.isoformat(),
            instance=instance,
            asset_selection=keys,
            raise_on_error=False,
        )


def _materialized(result: Any) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def _checks(result: Any) -> dict[str, Any]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _night_keys() -> tuple[list[Any], list[Any]]:
    """The lakehouse assets (ending with the gold features) and what the night runs after them."""
    from pipelines.keys import (
        BRONZE_ORDERS_KEY,
        CHAMPION_MODEL_KEY,
        CURRENT_KEY,
        CUSTOMER_FEATURES_KEY,
        HISTORY_KEY,
        MONGO_PREDICTIONS_KEY,
        SILVER_CUSTOMERS_KEY,
        SILVER_ORDERS_KEY,
    )

    lakehouse = [BRONZE_ORDERS_KEY, SILVER_ORDERS_KEY, SILVER_CUSTOMERS_KEY, CUSTOMER_FEATURES_KEY]
    return lakehouse, [CHAMPION_MODEL_KEY, HISTORY_KEY, CURRENT_KEY, MONGO_PREDICTIONS_KEY]


def test_failing_gold_contract_blocks_downstream_in_the_same_run(
    spark: Any, landing_settings: Settings
) -> None:
    settings = landing_settings
    lakehouse, downstream = _night_keys()
    gold = lakehouse[-1]
    clean = _run(settings, lakehouse)
    assert clean.success
    assert _materialized(clean) == {k.to_user_string() for k in lakehouse}
    checks = _checks(clean)
    assert all(checks[name].passed for name in checks), checks
    assert {"customer_features_contract", "silver_orders_contract"} <= set(checks)
    assert read_table(spark, settings, SILVER_CUSTOMERS).count() == 400
    docs = checks["customer_features_contract"].metadata["data_docs"].value
    gold_docs = Path(settings.lakehouse.data_docs_dir) / "gold_customer_features" / "index.html"
    assert docs == gold_docs.resolve().as_uri() and gold_docs.exists()

    # A corrupt row lands in silver behind the contracts' back (e.g. a manual fix gone wrong).
    bad = (
        read_table(spark, settings, SILVER_ORDERS)
        .limit(1)
        .select(
            F.lit("corrupt-1").alias("order_id"),
            "customer_id",
            F.lit(SCORE_DATE - dt.timedelta(days=3)).alias("order_date"),
            F.lit(1).alias("quantity"),
            F.lit(-1e6).alias("amount"),
            F.lit("manual").alias("batch_id"),
        )
    )
    bad.write.format("delta").mode("append").save(table_path(settings, SILVER_ORDERS))

    blocked = _run(settings, [gold, *downstream])
    assert not blocked.success
    assert _materialized(blocked) == {gold.to_user_string()}
    contract = _checks(blocked)["customer_features_contract"]
    assert not contract.passed
    failed = contract.metadata["failed"].value
    assert [(f["column"], f["unexpected_count"]) for f in failed] == [("monetary_all", 1)]
    assert "monetary_all) failed on 1 of" in contract.description


@pytest.mark.reliability
def test_a_landing_file_with_a_wrong_schema_stops_the_night_before_anything_is_written(
    spark: Any, landing_settings: Settings, reliability_report: Any
) -> None:
    """Scenario 8 through Dagster: the bronze step refuses the batch, so nothing downstream
    (features, model, scoring, the MongoDB sync) runs, and every table keeps its version."""
    import pandas as pd

    from jobs.platform.lake import table_version
    from schemas.tables import BRONZE_ORDERS, CUSTOMER_FEATURES

    settings = landing_settings
    lakehouse, downstream = _night_keys()
    assert _run(settings, lakehouse).success  # yesterday's night, from good files
    tables = (BRONZE_ORDERS, SILVER_ORDERS, SILVER_CUSTOMERS, CUSTOMER_FEATURES)
    before = {t.name: table_version(spark, settings, t) for t in tables}
    silver_rows = read_table(spark, settings, SILVER_ORDERS).count()

    wrong = pd.DataFrame({"order_id": ["x1"], "client": ["c1"], "day": ["2023-10-30"]})
    wrong.to_parquet(Path(settings.lakehouse.landing_dir) / "orders" / "tonight.parquet")
    night = _run(settings, [*lakehouse, *downstream])

    failed = [e for e in night.all_events if e.event_type_value == "STEP_FAILURE"]
    after = {t.name: table_version(spark, settings, t) for t in tables}
    reliability_report.record(
        scenario="8 bad landing file blocks the night (Dagster)",
        bad_inputs=1,
        rows_lost=max(0, silver_rows - read_table(spark, settings, SILVER_ORDERS).count()),
        rows_duplicated=max(0, read_table(spark, settings, SILVER_ORDERS).count() - silver_rows),
        detail=f"failed steps {[e.step_key for e in failed]}; materialized {_materialized(night)}",
    )
    assert not night.success
    assert len(failed) == 1 and "orders" in str(failed[0].step_key)  # the ingest step only
    assert "lack columns" in str(failed[0].event_specific_data.error)
    assert _materialized(night) == set()
    assert after == before


def test_the_nightly_silver_contract_checks_the_nights_batch_and_the_week_the_table(
    spark: Any, landing_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import DagsterInstance

    from pipelines.definitions import build_definitions
    from pipelines.lakehouse.maintenance import MAINTENANCE_JOB

    settings = landing_settings
    lakehouse, _ = _night_keys()
    ingest = lakehouse[:3]
    first = _run(settings, ingest)
    contract = _checks(first)["silver_orders_contract"]
    silver_rows = read_table(spark, settings, SILVER_ORDERS).count()
    assert contract.passed and contract.metadata["scope"].value == "batch"
    assert contract.metadata["rows"].value == silver_rows  # the first load is one batch

    # Nothing new landed: nothing to check.
    again = _checks(_run(settings, ingest))["silver_orders_contract"]
    assert again.passed and again.metadata["rows"].value == 0
    assert "no new rows in this run" in (again.description or "")

    # A corrupt row lands behind the contracts' back, then a night ingests five new orders:
    # the night validates its five rows, not the corrupt one (whose batch it did not write).
    corrupt = (
        read_table(spark, settings, SILVER_ORDERS)
        .limit(1)
        .select(
            F.lit("corrupt-2").alias("order_id"),
            "customer_id",
            "order_date",
            "quantity",
            F.lit(-5.0).alias("amount"),
            F.lit("manual").alias("batch_id"),
        )
    )
    corrupt.write.format("delta").mode("append").save(table_path(settings, SILVER_ORDERS))
    new = Path(settings.lakehouse.landing_dir) / "orders" / "late-night.csv"
    new.write_text(
        "order_id,customer_id,order_date,quantity,amount\n"
        + "".join(f"new-{i},C00000{i},2023-10-30,1,{i + 1}.5\n" for i in range(5))
    )
    night = _checks(_run(settings, ingest))["silver_orders_contract"]
    assert night.passed and night.metadata["rows"].value == 5
    assert night.metadata["silver_inserted"].value == 5

    # The whole table, each night when configured so, and every week: the corrupt row fails.
    monkeypatch.setenv("LAKESCORE_LAKEHOUSE__SILVER_CONTRACT_SCOPE", "table")
    get_settings.cache_clear()
    whole = _checks(_run(get_settings(), ingest))["silver_orders_contract"]
    assert not whole.passed and whole.metadata["scope"].value == "table"
    assert "ExpectColumnValuesToBeBetween(amount) failed on 1 of" in (whole.description or "")
    monkeypatch.delenv("LAKESCORE_LAKEHOUSE__SILVER_CONTRACT_SCOPE")
    get_settings.cache_clear()

    job = build_definitions(get_settings()).resolve_job_def(MAINTENANCE_JOB)
    with DagsterInstance.ephemeral() as instance:
        weekly = job.execute_in_process(
            instance=instance, op_selection=["validate_silver"], raise_on_error=False
        )
    assert not weekly.success
    failure = next(e for e in weekly.all_events if e.is_step_failure)
    assert "silver_orders: ExpectColumnValuesToBeBetween(amount) failed on 1 of" in str(
        failure.event_specific_data
    )
