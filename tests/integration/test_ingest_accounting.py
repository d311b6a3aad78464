"""Row accounting of an ingest batch from counts taken apart, and conflicting re-sends.

Every row read is inserted, updates silver, is a duplicate (within the batch or of
silver), is superseded, or is quarantined (a broken rule or a conflicting re-send); silver
grows by what was inserted, counted at its versions; a batch that does not add up fails,
naming every count, before bronze marks its files as done.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

import jobs.lakehouse.ingest as ingest
from jobs.lakehouse.ingest import IngestAccountingError, IngestResult, ingest_landing
from jobs.lakehouse.merge import SilverCommit
from jobs.platform.lake import read_table, table_path, table_version
from schemas.settings import Settings, get_settings
from schemas.tables import (
    BRONZE_ORDERS,
    QUARANTINE_ORDERS,
    SILVER_CUSTOMERS,
    SILVER_ORDERS,
)

pytestmark = pytest.mark.integration

ORDERS = "order_id,customer_id,order_date,quantity,amount\n"
CUSTOMERS = "customer_id,signup_date,country,channel,device\n"
FIRST = "o1,c1,2024-01-05,1,10.0\no2,c1,2024-01-09,2,20.5\no3,c2,2024-01-10,1,5.0\n"
COUNTS = (
    "rows_read",
    "silver_inserted",
    "silver_updated",
    "duplicates_in_batch",
    "duplicates_in_silver",
    "superseded",
    "conflicts",
    "quarantined",
    "silver_rows_before",
    "silver_rows_after",
)


@pytest.fixture()
def local(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={"lake": settings.lake.model_copy(update={"root": str(tmp_path / "lake")})}
    )


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _counts(result: IngestResult) -> dict[str, Any]:
    return {name: getattr(result, name) for name in COUNTS}


def _silver(spark: Any, settings: Settings, spec: Any = SILVER_ORDERS) -> dict[str, Any]:
    return {r[0]: r for r in read_table(spark, settings, spec).collect()}


def test_an_order_resent_with_other_values_is_quarantined_never_dropped(
    spark: Any, local: Settings, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    _write(landing / "orders" / "d1.csv", ORDERS + FIRST)
    first = ingest_landing(spark, local, landing=landing)[0]
    assert first.accounted and first.silver_inserted == 3
    _write(
        landing / "orders" / "d2.csv",
        ORDERS
        + "o1,c1,2024-01-05,1,10.0\n"  # identical to silver: a duplicate of silver
        + "o2,c1,2024-01-09,2,99.0\n"  # silver holds o2 with 20.5: a conflict
        + "o4,c3,2024-01-11,1,4.0\n"
        + "o4,c3,2024-01-11,1,4.0\n"  # the same new order twice: one insert, one duplicate
        + "o5,c3,2024-01-12,1,7.0\n"
        + "o5,c3,2024-01-12,3,7.0\n"  # a new order twice with other values: both conflicts
        + "o6,,2024-01-12,1,7.0\n",  # a broken rule
    )
    second = ingest_landing(spark, local, landing=landing)[0]
    assert _counts(second) == {
        "rows_read": 7,
        "silver_inserted": 1,
        "silver_updated": 0,
        "duplicates_in_batch": 1,
        "duplicates_in_silver": 1,
        "superseded": 0,
        "conflicts": 3,
        "quarantined": 1,
        "silver_rows_before": 3,
        "silver_rows_after": 4,
    }
    assert second.accounted
    silver = _silver(spark, local)
    assert sorted(silver) == ["o1", "o2", "o3", "o4"]
    assert silver["o2"]["amount"] == 20.5  # orders are immutable: silver keeps the first values
    quarantine = read_table(spark, local, QUARANTINE_ORDERS).where(F.col("source_file") == "d2.csv")
    reasons = sorted((r["order_id"] or "", r["reason"]) for r in quarantine.collect())
    assert reasons == [
        ("o2", "conflicting_resend: order_id o2 already in silver with other values"),
        ("o5", "conflicting_resend: order_id o5 sent with different values in the same batch"),
        ("o5", "conflicting_resend: order_id o5 sent with different values in the same batch"),
        ("o6", "missing customer_id"),
    ]
    assert (
        read_table(spark, local, BRONZE_ORDERS).where(F.col("source_file") == "d2.csv").count() == 7
    )


def test_a_changed_profile_is_an_update_and_other_values_in_one_batch_are_superseded(
    spark: Any, local: Settings, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    _write(
        landing / "customers" / "p1.csv",
        CUSTOMERS + "c1,2023-01-01,US,email,mobile\nc2,2023-02-01,DE,organic,desktop\n",
    )
    ingest_landing(spark, local, landing=landing)
    _write(
        landing / "customers" / "p2.csv",
        CUSTOMERS
        + "c1,2023-01-01,US,email,desktop\n"  # changed device: an update, not a conflict
        + "c2,2023-02-01,DE,organic,desktop\n"  # the same: a duplicate of silver
        + "c3,2023-03-01,FR,social,mobile\n"
        + "c3,2023-03-01,FR,social,tablet\n"  # two profiles of a new customer: tablet wins
        + "c4,2023-03-01,GB,email,mobile\n"
        + "c4,2023-03-01,GB,email,mobile\n",  # twice the same: one insert, one duplicate
    )
    customers = ingest_landing(spark, local, landing=landing)[1]
    assert _counts(customers) == {
        "rows_read": 6,
        "silver_inserted": 2,
        "silver_updated": 1,
        "duplicates_in_batch": 1,
        "duplicates_in_silver": 1,
        "superseded": 1,
        "conflicts": 0,
        "quarantined": 0,
        "silver_rows_before": 2,
        "silver_rows_after": 4,
    }
    assert customers.accounted
    silver = _silver(spark, local, SILVER_CUSTOMERS)
    assert (silver["c1"]["device"], silver["c3"]["device"]) == ("desktop", "tablet")


def test_the_first_load_is_appended_and_counted_from_the_table_versions(
    spark: Any, local: Settings, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    _write(landing / "orders" / "d1.csv", ORDERS + FIRST + "o1,c1,2024-01-05,1,10.0\n")
    result = ingest_landing(spark, local, landing=landing)[0]
    assert (result.silver_rows_before, result.silver_rows_after) == (0, 3)
    assert (result.silver_inserted, result.duplicates_in_batch, result.bronze_written) == (3, 1, 4)
    assert result.silver_version_after == (result.silver_version_before or 0) + 1
    commit = DeltaTable.forPath(spark, table_path(local, SILVER_ORDERS)).history(1).first()
    assert commit is not None and commit["operation"] == "WRITE"  # no merge join on empty silver


def _losing_a_row(real: Any, lost: str) -> Any:
    def merge(*args: Any, rows: Any, **kwargs: Any) -> SilverCommit:
        return real(*args, rows=rows.where(F.col("order_id") != lost), **kwargs)

    return merge


def test_a_row_lost_in_the_merge_fails_the_batch_naming_every_count_and_leaves_its_files_new(
    spark: Any, local: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    _write(landing / "orders" / "d1.csv", ORDERS + FIRST)
    ingest_landing(spark, local, landing=landing)
    before = table_version(spark, local, SILVER_ORDERS)
    _write(
        landing / "orders" / "d2.csv", ORDERS + "o7,c1,2024-02-01,1,3.0\no8,c2,2024-02-02,1,4.0\n"
    )
    monkeypatch.setattr(ingest, "merge_silver", _losing_a_row(ingest.merge_silver, "o8"))

    with pytest.raises(IngestAccountingError) as failed:
        ingest_landing(spark, local, landing=landing)

    message = str(failed.value)
    for name in COUNTS:
        assert re.search(rf"\b{name}=\d+", message), (name, message)
    assert "rows_read=2, silver_inserted=1," in message
    assert "rows read 2 != inserted + updated" in message
    result = failed.value.result
    assert (result.rows_read, result.silver_inserted, result.new_keys) == (2, 1, 2)
    # Silver holds what the merge committed, no more; bronze never marked the file as done.
    assert table_version(spark, local, SILVER_ORDERS) == result.silver_version_after == before + 1
    assert read_table(spark, local, SILVER_ORDERS).count() == result.silver_rows_after == 4
    assert (
        read_table(spark, local, BRONZE_ORDERS).where(F.col("source_file") == "d2.csv").count() == 0
    )

    monkeypatch.undo()  # the next run redoes the file: o7 is now a duplicate of silver
    again = ingest_landing(spark, local, landing=landing)[0]
    assert (again.files, again.silver_inserted, again.duplicates_in_silver) == (1, 1, 1)
    assert again.accounted and sorted(_silver(spark, local)) == ["o1", "o2", "o3", "o7", "o8"]


def test_a_write_that_reports_an_insert_as_an_update_is_caught_by_the_silver_versions(
    spark: Any, local: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The silver row counts come from the versions, not from the write's own metrics."""
    landing = tmp_path / "landing"
    _write(landing / "orders" / "d1.csv", ORDERS + FIRST)
    real = ingest.merge_silver

    def misreporting(*args: Any, **kwargs: Any) -> SilverCommit:
        commit = real(*args, **kwargs)
        return dataclasses.replace(commit, inserted=commit.inserted - 1, updated=commit.updated + 1)

    monkeypatch.setattr(ingest, "merge_silver", misreporting)
    with pytest.raises(IngestAccountingError, match=r"silver grew by 3 rows .* reports 2 inserted"):
        ingest_landing(spark, local, landing=landing)


def test_a_row_lost_from_the_quarantine_table_fails_the_batch(
    spark: Any, local: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quarantined rows are counted in the quarantine table, not from the rows meant for it."""
    landing = tmp_path / "landing"
    _write(landing / "orders" / "d1.csv", ORDERS + FIRST + "o9,,2024-01-05,1,1.0\n")
    real = ingest._quarantine_counts

    def after_losing_one(spark: Any, settings: Settings, spec: Any, prints: list[str]) -> Any:
        DeltaTable.forPath(spark, table_path(settings, spec)).delete(F.col("order_id") == "o9")
        return real(spark, settings, spec, prints)

    monkeypatch.setattr(ingest, "_quarantine_counts", after_losing_one)
    with pytest.raises(IngestAccountingError, match=r"rows read 4 != .* = 3"):
        ingest_landing(spark, local, landing=landing)


def test_accounting_names_each_equation_that_fails() -> None:
    good = IngestResult(
        source_file="orders",
        fingerprint="f",
        batch_id="b",
        skipped=False,
        rows_read=10,
        silver_inserted=4,
        silver_updated=1,
        duplicates_in_batch=1,
        duplicates_in_silver=1,
        superseded=1,
        conflicts=1,
        quarantined=1,
        new_keys=4,
        changed_keys=1,
        silver_version_before=3,
        silver_version_after=4,
        silver_rows_before=6,
        silver_rows_after=10,
        bronze_written=10,
    )
    assert good.accounted and good.accounting_errors() == []
    cases = {
        "rows read 10 != ": {"duplicates_in_batch": 0},
        "silver grew by 3 rows": {"silver_rows_after": 9},
        "the batch holds 5 new": {"new_keys": 5},
        "another writer committed": {"silver_version_after": 6},
        "bronze wrote 9 rows of 10 read": {"bronze_written": 9},
    }
    for sentence, change in cases.items():
        bad = dataclasses.replace(good, **change)
        assert not bad.accounted
        assert any(sentence in e for e in bad.accounting_errors()), (
            sentence,
            bad.accounting_errors(),
        )
        assert "rows_read=10" in str(IngestAccountingError(bad))


@pytest.fixture()
def landing_settings(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    monkeypatch.setenv("LAKESCORE_LAKE__ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LAKESCORE_LAKEHOUSE__LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("LAKESCORE_LAKEHOUSE__DATA_DOCS_DIR", str(tmp_path / "docs"))
    monkeypatch.setenv("LAKESCORE_SCHEDULE__STEP_RETRIES", "0")
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_the_ingest_asset_fails_with_the_counts_when_a_batch_does_not_add_up(
    spark: Any, landing_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import DagsterInstance

    from pipelines.definitions import NIGHTLY_JOB, build_definitions
    from pipelines.keys import BRONZE_ORDERS_KEY, SILVER_CUSTOMERS_KEY, SILVER_ORDERS_KEY

    _write(tmp_path / "landing" / "orders" / "d1.csv", ORDERS + FIRST)
    monkeypatch.setattr(ingest, "merge_silver", _losing_a_row(ingest.merge_silver, "o2"))
    job = build_definitions(landing_settings).resolve_job_def(NIGHTLY_JOB)
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            partition_key="2024-02-01",
            instance=instance,
            asset_selection=[BRONZE_ORDERS_KEY, SILVER_ORDERS_KEY, SILVER_CUSTOMERS_KEY],
            raise_on_error=False,
        )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.event_specific_data.error.message
    assert "IngestAccountingError" in description
    assert "rows_read=3, silver_inserted=2," in description
    assert "silver_rows_before=0, silver_rows_after=2" in description
    assert result.get_asset_materialization_events() == []
