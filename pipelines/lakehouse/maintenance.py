"""Weekly table maintenance: silver.orders back in customer order after the week's merges.

The feature build's window sorts the orders by (customer, order date), the order the
first load writes silver.orders in; nightly ingests merge into it and leave files in the
join's order, so the sort slowly loses its presorted runs (jobs/features/order_gaps.py). The
``silver_maintenance`` job rewrites the table in that order (``jobs.lakehouse.silver_layout``), one
``dataChange=false`` commit with the same rows, and skips the rewrite when nothing since
the last one can have unsorted it. Its schedule (``schedule.maintenance_cron``) keeps it
clear of the night: a merge committed meanwhile would make one of the two fail Delta's
conflict check (no row lost, the failed one can run again).
"""

from collections.abc import Iterator
from typing import Any

from dagster import AssetObservation, OpExecutionContext, Output, job, op

from jobs.lakehouse import needs_resort, resort_table
from jobs.platform import table_exists
from pipelines.alerts import notify_failure
from pipelines.keys import SILVER_ORDERS_KEY
from pipelines.resources import LakescoreResource
from schemas.tables import SILVER_ORDERS

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


@job(
    name=MAINTENANCE_JOB,
    description="Weekly: silver.orders back in customer order.",
    hooks={notify_failure},
)
def silver_maintenance() -> None:
    resort_silver_orders()
