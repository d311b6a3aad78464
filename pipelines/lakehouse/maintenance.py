"""Weekly maintenance: silver.orders back in customer order after the week's merges, the
whole silver tables validated, then retention (VACUUM, log retention, leftover serving
collections, old MLflow artifacts).

The feature build's window sorts the orders by (customer, order date), the order the
first load writes silver.orders in; nightly ingests merge into it and leave files in the
join's order, so the sort slowly loses its presorted runs (jobs/features/order_gaps.py). The
``silver_maintenance`` job rewrites the table in that order (``jobs.lakehouse.silver_layout``), one
``dataChange=false`` commit with the same rows, and skips the rewrite when nothing since
the last one can have unsorted it. Its schedule (``schedule.maintenance_cron``) keeps it
clear of the night: a merge committed meanwhile would make one of the two fail Delta's
conflict check (no row lost, the failed one can run again).

``validate_silver`` runs the silver contracts on the whole tables once a week (each
night validates only the rows its merge wrote, ``lakehouse.silver_contract_scope``).
``retention`` runs after the rewrite (so the files it replaced are counted by the next
week's VACUUM, not deleted now): ``jobs.platform.apply_retention`` with the
``retention:`` settings, whose counts are an observation of every table it vacuumed.
``compact_served_log`` rewrites the closed days of ``monitoring.served`` (the API's small
appends) into large files.
"""

import datetime as dt
from collections.abc import Iterator
from typing import Any

from dagster import AssetObservation, Failure, In, Nothing, OpExecutionContext, Output, job, op

from jobs.lakehouse import check_contract, needs_resort, resort_table
from jobs.monitoring import compact_served
from jobs.platform import apply_retention, read_table, table_exists
from pipelines.alerts import notify_failure
from pipelines.keys import SILVER_CUSTOMERS_KEY, SILVER_ORDERS_KEY, table_key
from pipelines.lakehouse.checks import docs_dir
from pipelines.resources import LakescoreResource
from schemas import contracts
from schemas.tables import ALL_TABLES, SERVED, SILVER_CUSTOMERS, SILVER_ORDERS

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
        "Great Expectations contracts on the whole silver tables (the nights validate "
        "only the rows their merge wrote); fails the job, after observing each, if one fails."
    ),
    ins={"after": In(Nothing)},  # after the rewrite (also runs alone: op_selection)
)
def validate_silver(context: OpExecutionContext, lakescore: LakescoreResource) -> Iterator[Any]:
    settings, spark = lakescore.settings(), lakescore.spark()
    failed = []
    for key, spec, contract in (
        (SILVER_ORDERS_KEY, SILVER_ORDERS, contracts.SILVER_ORDERS),
        (SILVER_CUSTOMERS_KEY, SILVER_CUSTOMERS, contracts.SILVER_CUSTOMERS),
    ):
        if not table_exists(spark, settings, spec):
            context.log.info(f"{spec.name} does not exist: nothing to validate")
            continue
        result = check_contract(
            read_table(spark, settings, spec),
            contract=contract,
            docs_dir=docs_dir(settings, contract),
        )
        yield AssetObservation(
            asset_key=key,
            metadata={
                "contract": contract.name,
                "scope": "table",
                "passed": result.success,
                "rows": -1 if result.rows is None else result.rows,
                "summary": result.summary(),
            },
        )
        if not result.success:
            failed.append(result.summary())
    if failed:
        raise Failure(description="; ".join(failed))
    yield Output("valid")


@op(
    description=(
        "Compact monitoring.served: every day before today rewritten into large files "
        "(OPTIMIZE, the same rows); the API's appends to today go on meanwhile."
    ),
    ins={"after": In(Nothing)},
)
def compact_served_log(context: OpExecutionContext, lakescore: LakescoreResource) -> Iterator[Any]:
    today = dt.datetime.now(dt.UTC).date()
    result = compact_served(lakescore.spark(), lakescore.settings(), before=today)
    yield AssetObservation(
        asset_key=table_key(SERVED),
        metadata={
            "compacted_before": result.before.isoformat(),
            "files_removed": result.files_removed,
            "files_added": result.files_added,
        },
    )
    yield Output(f"{result.files_removed} files into {result.files_added}")


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
    description="Weekly: silver.orders back in customer order, then the whole silver tables "
    "validated, monitoring.served compacted, and retention.",
    hooks={notify_failure},
)
def silver_maintenance() -> None:
    resorted = resort_silver_orders()
    validate_silver(after=resorted)
    compact_served_log(after=resorted)
    retention(after=resorted)
