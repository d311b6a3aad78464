"""Landing-file ingestion: idempotent by content, exact row accounting, quarantine with reasons."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from jobs.lakehouse.ingest import _seen_fingerprints, _seen_in_log, ingest_landing
from jobs.platform.lake import read_table, table_path
from schemas.settings import Settings
from schemas.tables import (
    BRONZE_ORDERS,
    QUARANTINE_CUSTOMERS,
    QUARANTINE_ORDERS,
    SILVER_CUSTOMERS,
    SILVER_ORDERS,
)

pytestmark = pytest.mark.integration

ORDERS_HEADER = "order_id,customer_id,order_date,quantity,amount\n"
GOOD = (
    "o1,c1,2024-01-05,1,10.0\n"
    "o2,c1,2024-01-09,2,20.5\n"
    "o3,c2,20240110,1,5\n"
    "o2,c1,2024-01-09,2,20.5\n"  # the same order twice in one file: one duplicate
)
BAD = (
    ",c3,2024-01-05,1,1.0\n"  # missing order_id
    "o10,,2024-01-05,1,1.0\n"  # missing customer_id
    "o11,c3,2024-13-45,1,1.0\n"  # unparseable date
    "o12,c3,2024-01-05,-2,1.0\n"  # negative quantity
    "o13,c3,2024-01-05,one,1.0\n"  # unparseable quantity
    "o14,c3,2024-01-05,1,-3.0\n"  # negative amount
    "o15,c3,2024-01-05,1,abc\n"  # unparseable amount
)


def _lake(settings: Settings, root: Path) -> Settings:
    return settings.model_copy(
        update={"lake": settings.lake.model_copy(update={"root": str(root)})}
    )


@pytest.fixture()
def local(settings: Settings, tmp_path: Path) -> Settings:
    return _lake(settings, tmp_path / "lake")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.reliability
def test_bad_rows_are_quarantined_with_reasons_and_every_row_is_accounted(
    spark: Any, local: Settings, tmp_path: Path, reliability_report: Any
) -> None:
    landing = tmp_path / "landing"
    _write(landing / "orders" / "day1.csv", ORDERS_HEADER + GOOD + BAD)
    result = ingest_landing(spark, local, landing=landing)[0]
    accounted = result.silver_inserted + result.duplicates_dropped + result.quarantined
    reliability_report.record(
        scenario="8 bad landing rows / file ingested twice",
        load=f"{result.rows_read} rows",
        bad_inputs=BAD.count("\n") + 1,  # the bad rows and the in-file duplicate
        rows_lost=max(0, result.rows_read - accounted),
        rows_duplicated=max(0, accounted - result.rows_read),
        detail=f"{result.quarantined} quarantined, {result.duplicates_dropped} duplicate dropped",
    )
    assert (result.rows_read, result.silver_inserted) == (11, 3)
    assert (result.duplicates_dropped, result.quarantined) == (1, 7)
    assert result.accounted
    reasons = {
        r["order_id"]: r["reason"]
        for r in read_table(spark, local, QUARANTINE_ORDERS).select("order_id", "reason").collect()
    }
    assert reasons == {
        None: "missing order_id",
        "o10": "missing customer_id",
        "o11": "unparseable order_date",
        "o12": "negative quantity",
        "o13": "unparseable quantity",
        "o14": "negative amount",
        "o15": "unparseable amount",
    }
    silver = read_table(spark, local, SILVER_ORDERS)
    assert sorted(r[0] for r in silver.select("order_id").collect()) == ["o1", "o2", "o3"]
    bronze = read_table(spark, local, BRONZE_ORDERS)
    assert bronze.count() == silver.count() + 1 + 7  # bronze = silver + duplicates + quarantined
    assert bronze.where(F.col("source_file") == "day1.csv").count() == 11


@pytest.mark.reliability
def test_same_content_adds_nothing_while_late_and_resent_orders_are_handled(
    spark: Any, local: Settings, tmp_path: Path, reliability_report: Any
) -> None:
    landing = tmp_path / "landing"
    first = _write(landing / "orders" / "a.csv", ORDERS_HEADER + GOOD + BAD)
    ingest_landing(spark, local, landing=landing)
    sizes = [read_table(spark, local, s).count() for s in (BRONZE_ORDERS, SILVER_ORDERS)]
    again = ingest_landing(spark, local, landing=landing)[0]
    shutil.copy(first, landing / "orders" / "a_renamed_copy.csv")
    renamed = ingest_landing(spark, local, landing=landing)[0]
    after = [read_table(spark, local, s).count() for s in (BRONZE_ORDERS, SILVER_ORDERS)]
    reliability_report.record(
        scenario="8 bad landing rows / file ingested twice",
        faults=2,  # the same file again, and a renamed copy of it
        rows_lost=sum(max(0, b - a) for b, a in zip(sizes, after, strict=True)),
        rows_duplicated=sum(max(0, a - b) for b, a in zip(sizes, after, strict=True)),
    )
    assert again.skipped and renamed.skipped
    assert after == sizes
    assert read_table(spark, local, QUARANTINE_ORDERS).count() == 7
    # A later file: one order re-sent (a duplicate of silver) and one late order for a past date.
    _write(
        landing / "orders" / "d2.csv",
        ORDERS_HEADER + "o1,c1,2024-01-05,1,10.0\n" + "o9,c2,2023-06-01,1,7\n",
    )
    result = ingest_landing(spark, local, landing=landing)[0]
    assert (result.rows_read, result.silver_inserted, result.duplicates_dropped) == (2, 1, 1)
    assert result.files == 1  # the copy of a.csv is still recognised as seen
    late = read_table(spark, local, SILVER_ORDERS).where(F.col("order_id") == "o9").first()
    assert late is not None and str(late["order_date"]) == "2023-06-01"


def test_customer_profiles_are_typed_checked_and_updated(
    spark: Any, local: Settings, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    header = "customer_id,signup_date,country,channel,device\n"
    _write(
        landing / "customers" / "p1.csv",
        header
        + "c1,2023-01-01,US,email,mobile\n"
        + "c2,2023-02-01,de,Organic,desktop\n"  # normalised: DE, organic
        + "c3,2023-02-01,XX,email,mobile\n"  # unknown country
        + "c4,2023-02-01,US,carrier_pigeon,mobile\n",  # unknown channel
    )
    first = ingest_landing(spark, local, landing=landing)[1]
    assert (first.rows_read, first.silver_inserted, first.quarantined) == (4, 2, 2)
    _write(
        landing / "customers" / "p2.csv",
        header + "c1,2023-01-01,US,email,desktop\n" + "c2,2023-02-01,DE,organic,desktop\n",
    )
    second = ingest_landing(spark, local, landing=landing)[1]
    # c1 changed (an update), c2 the same (a duplicate of silver)
    assert (second.silver_inserted, second.silver_updated, second.duplicates_in_silver) == (0, 1, 1)
    assert second.accounted
    silver = {r["customer_id"]: r for r in read_table(spark, local, SILVER_CUSTOMERS).collect()}
    assert silver["c1"]["device"] == "desktop"
    assert (silver["c2"]["country"], silver["c2"]["channel"]) == ("DE", "organic")
    reasons = sorted(
        r[0] for r in read_table(spark, local, QUARANTINE_CUSTOMERS).select("reason").collect()
    )
    assert reasons == ["unknown channel carrier_pigeon", "unknown country XX"]


def test_parquet_landing_files_are_read_with_the_source_schema(
    spark: Any, local: Settings, tmp_path: Path
) -> None:
    from jobs.lakehouse.synthetic import generate

    landing = tmp_path / "landing"
    gen = generate(customers=300, days=120, seed=3, out=landing, chunk_customers=150)
    orders, customers = ingest_landing(spark, local, landing=landing)
    assert (orders.files, customers.files) == (2, 2)
    assert orders.rows_read == gen.orders == orders.silver_inserted
    assert customers.silver_inserted == 300


def _silver_order_keys(spark: Any, settings: Settings) -> dict[str, list[tuple[Any, Any]]]:
    """(customer_id, order_date) of every silver order, per data file, in file order."""
    import pyarrow.parquet as pq

    keys = {}
    for uri in read_table(spark, settings, SILVER_ORDERS).inputFiles():
        table = pq.read_table(uri.removeprefix("file:"), columns=["customer_id", "order_date"])
        ids, days = table["customer_id"].to_pylist(), table["order_date"].to_pylist()
        keys[uri] = list(zip(ids, days, strict=True))
    return keys


def _unsorted_files(spark: Any, settings: Settings) -> list[str]:
    return [f for f, keys in _silver_order_keys(spark, settings).items() if keys != sorted(keys)]


def test_first_load_writes_silver_orders_sorted_by_customer_then_date_in_each_file(
    spark: Any, local: Settings, tmp_path: Path
) -> None:
    """The feature build's window relies on this order for presorted runs (jobs.features.order_gaps)."""
    from jobs.lakehouse.synthetic import generate

    landing = tmp_path / "landing"
    generate(customers=400, days=200, seed=5, out=landing, chunk_customers=100)
    orders, _ = ingest_landing(spark, local, landing=landing)
    files = _silver_order_keys(spark, local)
    assert files and orders.silver_inserted > 1000
    assert _unsorted_files(spark, local) == []
    assert sum(len(keys) for keys in files.values()) == orders.silver_inserted


def test_resort_rewrites_merged_silver_orders_in_customer_order_with_the_same_rows(
    spark: Any, local: Settings, tmp_path: Path
) -> None:
    from delta.tables import DeltaTable

    from jobs.lakehouse.silver_layout import resort_table
    from jobs.platform.lake import table_path

    landing = tmp_path / "landing"
    _write(landing / "orders" / "a.csv", ORDERS_HEADER + GOOD)
    ingest_landing(spark, local, landing=landing)
    late = "".join(f"z{i},c{9 - i % 9},2023-0{1 + i % 9}-1{i % 10},1,{i}.5\n" for i in range(40))
    _write(landing / "orders" / "b.csv", ORDERS_HEADER + late)
    ingest_landing(spark, local, landing=landing)  # a merge: its files in the join's order
    before = sorted(map(tuple, read_table(spark, local, SILVER_ORDERS).collect()))
    assert _unsorted_files(spark, local)

    result = resort_table(spark, local, SILVER_ORDERS)

    after = sorted(map(tuple, read_table(spark, local, SILVER_ORDERS).collect()))
    assert after == before and result.rows == len(before) == 43
    assert _unsorted_files(spark, local) == []
    commit = DeltaTable.forPath(spark, table_path(local, SILVER_ORDERS)).history(1).first()
    assert commit is not None and commit["version"] == result.version == result.read_version + 1
    # dataChange=false: the rewrite adds no new data for streaming or change readers.
    log = Path(table_path(local, SILVER_ORDERS)) / "_delta_log" / f"{result.version:020d}.json"
    actions = log.read_text()
    assert '"dataChange":false' in actions and '"dataChange":true' not in actions
    with pytest.raises(ValueError, match="declares no sort order"):
        resort_table(spark, local, QUARANTINE_ORDERS)


def test_weekly_maintenance_resorts_silver_only_after_a_merge(
    spark: Any, local: Settings, tmp_path: Path
) -> None:
    """The silver_maintenance job, in a real Dagster run: skips a table still in order,
    rewrites it after a merge, then skips it again until the next merge. (Its retention
    step adds only metadata and VACUUM commits: tests/integration/test_retention.py.)"""
    from dagster import DagsterInstance
    from delta.tables import DeltaTable

    from jobs.platform.lake import table_version
    from jobs.platform.retention import LISTING_PARALLELISM
    from pipelines.definitions import build_definitions
    from pipelines.lakehouse.maintenance import MAINTENANCE_JOB
    from pipelines.resources import LakescoreResource

    job = build_definitions(
        local, resource=LakescoreResource(lake_root=local.lake.root)
    ).resolve_job_def(MAINTENANCE_JOB)

    def run(*, retention: bool = False) -> tuple[str, list[Any]]:
        """One run of the job; the retention step only when asked (it VACUUMs every table:
        once here, after the rewrite, as every week)."""
        with DagsterInstance.ephemeral() as instance:
            result = job.execute_in_process(
                instance=instance, op_selection=None if retention else ["resort_silver_orders"]
            )
            assert result.success
            observed = [
                e.event_specific_data.asset_observation
                for e in result.all_events
                if e.event_type_value == "ASSET_OBSERVATION"
                and e.step_key == "resort_silver_orders"
            ]
            return result.output_for_node("resort_silver_orders"), observed

    def rewrites_since(version: int) -> list[str]:
        """Commits after ``version`` other than the retention step's."""
        history = DeltaTable.forPath(spark, local.table_path(SILVER_ORDERS.name)).history()
        return [
            r["operation"]
            for r in history.where(f"version > {version}").collect()
            if r["operation"] not in ("SET TBLPROPERTIES", "VACUUM START", "VACUUM END")
        ]

    assert run() == ("absent", [])
    landing = tmp_path / "landing"
    _write(landing / "orders" / "a.csv", ORDERS_HEADER + GOOD)
    ingest_landing(spark, local, landing=landing)  # the first load: sorted files
    version = table_version(spark, local, SILVER_ORDERS)
    assert run() == ("in order", [])
    assert rewrites_since(version) == []

    late = "".join(f"z{i},c{9 - i % 9},2023-0{1 + i % 9}-1{i % 10},1,{i}.5\n" for i in range(40))
    _write(landing / "orders" / "b.csv", ORDERS_HEADER + late)
    ingest_landing(spark, local, landing=landing)  # a merge
    assert _unsorted_files(spark, local)
    listing = spark.conf.get(LISTING_PARALLELISM, None)
    outcome, [observation] = run(retention=True)
    assert outcome == "resorted" and _unsorted_files(spark, local) == []
    assert spark.conf.get(LISTING_PARALLELISM, None) == listing  # VACUUM's own, put back
    assert observation.asset_key.to_user_string() == "silver/orders"
    assert observation.metadata["resorted_rows"].value == 43
    resorted = table_version(spark, local, SILVER_ORDERS)
    assert run() == ("in order", [])
    assert rewrites_since(resorted) == []


def test_seen_files_are_found_in_the_delta_log_without_spark(
    spark: Any, local: Settings, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    # One batch of three files (its data files hold three fingerprints), then one more file.
    for i in range(3):
        _write(landing / "orders" / f"b{i}.csv", ORDERS_HEADER + f"o{i},c{i},2024-01-05,1,1\n")
    ingest_landing(spark, local, landing=landing)
    _write(landing / "orders" / "late.csv", ORDERS_HEADER + "o9,c9,2024-01-06,1,1\n")
    ingest_landing(spark, local, landing=landing)

    bronze = read_table(spark, local, BRONZE_ORDERS)
    ingested = {r[0] for r in bronze.select("file_fingerprint").distinct().collect()}
    assert len(ingested) == 4
    # Fingerprints that share the stored 32-character prefix of one ingested, or sort
    # between two of them: the statistics pick files, the read tells them apart.
    near = {next(iter(ingested))[:32] + "0" * 32, "0" * 64, "f" * 64}
    asked = ingested | near
    path = table_path(local, BRONZE_ORDERS)
    jobs_before = len(spark.sparkContext.statusTracker().getJobIdsForGroup())
    found = _seen_in_log(path, asked)
    assert found == ingested
    assert len(spark.sparkContext.statusTracker().getJobIdsForGroup()) == jobs_before
    assert _seen_in_log(str(tmp_path / "no_table"), asked) == set()
    # The nightly path (delta-rs first) agrees with Spark's answer for the same question.
    spark_says = {
        r[0]
        for r in bronze.where(F.col("file_fingerprint").isin(sorted(asked)))
        .select("file_fingerprint")
        .distinct()
        .collect()
    }
    assert _seen_fingerprints(spark, local, BRONZE_ORDERS, sorted(asked)) == spark_says == found
