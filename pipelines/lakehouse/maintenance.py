"""Weekly maintenance: silver.orders back in customer order after the week's merges, then
retention (VACUUM, log retention, leftover serving collections, old MLflow artifacts).

The feature build's window sorts the orders by (customer, order date), the order the
first load writes silver.orders in; nightly ingests merge into it and leave files in the
join's order, so the sort slowly loses its presorted runs (jobs/features/order_gaps.py). The
``silver_maintenance`` job rewrites the table in that order (``jobs.lakehouse.silver_layout``), one
``dataChange=false`` commit with the same rows, and skips the rewrite when nothing since
the last one can have unsorted it. Its schedule (``schedule.maintenance_cron``) keeps it
clear of the night: a merge committed meanwhile would make one of the two fail Delta's
conflict check (no row lost, the failed one can run again).

``retention`` runs after the rewrite (so the files it replaced are counted by the next
week's VACUUM, not deleted now): ``jobs.platform.apply_retention`` with the
``retention:`` settings, whose counts are an observation of every table it vacuumed.
"""

from collections.abc import Iterator
from typing import Any

from dagster import AssetObservation, OpExecutionContext, Output, job, op

from jobs.lakehouse import needs_resort, resort_table
from jobs.platform import apply_retention, table_exists
from pipelines.alerts import notify_failure
from pipelines.keys import SILVER_ORDERS_KEY, table_key
from pipelines.resources import LakescoreResource
from schemas.tables import ALL_TABLES, SILVER_ORDERS

MAINTENANCE_JOB = "silver_maintenance"


@op(description="Rewrite silver.orders sorted by (customer, order date) when merges unsorted it.")
def resort_silver_orders(
    context: OpExecutionContext, lakescore: LakescoreResource
) -> Iterator[Any]:
    settings, spark = lakescore.settings(), lakescore.spark()
    if not table_exists(spark, settings, SILVER_ORDERS):
        context.log.info(f"{SILVER_ORDERS.name} does not exist yet: nothing to rewrite")
        yield Output("absent")
        return
    if not needs_resort(spark, settings, SILVER_ORDERS):
        context.log.info(f"{SILVER_ORDERS.name} is in order since its last rewrite: skipped")
        yield Output("in order")
        return
    result = resort_table(spark, settings, SILVER_ORDERS)
    yield AssetObservation(
        asset_key=SILVER_ORDERS_KEY,
        metadata={
            "resorted_rows": result.rows,
            "files_before": result.files_before,
            "files_after": result.files_after,
            "read_version": result.read_version,
            "delta_version": result.version,
        },
    )
    yield Output("resorted")


@op(
    description=(
        "VACUUM every table with retention.vacuum_hours, set its log retention, drop the "
        "collections old full syncs left, prune old unregistered MLflow artifacts."
    )
)
def retention(
    context: OpExecutionContext, lakescore: LakescoreResource, after: str
) -> Iterator[Any]:
    result = apply_retention(lakescore.spark(), lakescore.settings())
    names = {spec.name: spec for spec in ALL_TABLES}
    for table in result.tables:
        yield AssetObservation(
            asset_key=table_key(names[table.table]),
            metadata={
                "vacuum_files_removed": table.files_removed,
                "vacuum_bytes_removed": -1 if table.bytes_removed is None else table.bytes_removed,
                "retention_properties_set": ", ".join(table.properties_set) or "-",
            },
        )
    if result.collections.skipped:
        context.log.warning(f"serving collections not pruned: {result.collections.skipped}")
    summary = (
        f"{result.files_removed} files, {len(result.collections.dropped)} collections, "
        f"{len(result.mlflow.runs)} MLflow runs"
    )
    yield Output(summary, metadata=result.metadata())


@job(
    name=MAINTENANCE_JOB,
    description="Weekly: silver.orders back in customer order, then retention.",
    hooks={notify_failure},
)
def silver_maintenance() -> None:
    retention(after=resort_silver_orders())
