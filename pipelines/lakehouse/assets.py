"""Landing files (or CDNOW) into bronze and silver, point-in-time features into gold, and contracts."""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
    multi_asset,
)
from pyspark.sql import functions as F

from jobs.features import build_customer_features
from jobs.lakehouse import (
    IngestAccountingError,
    IngestResult,
    check_contract,
    ingest_configured,
)
from jobs.platform import read_table
from pipelines.errors import permanent_errors, permanent_failure
from pipelines.keys import (
    BRONZE_ORDERS_KEY,
    CUSTOMER_FEATURES_KEY,
    SILVER_CUSTOMERS_KEY,
    SILVER_ORDERS_KEY,
)
from pipelines.lakehouse.checks import build_contract_checks, check_result, docs_dir
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource
from schemas import contracts
from schemas.tables import BRONZE_ORDERS

BRONZE_CONTRACT = "bronze_orders_contract"


def _ingest_metadata(result: IngestResult) -> dict[str, Any]:
    return {
        "source": result.source_file,
        "batch_id": result.batch_id,
        "files": result.files,
        "skipped_already_ingested": result.skipped,
        "rows_read": result.rows_read,
        "silver_inserted": result.silver_inserted,
        "silver_updated": result.silver_updated,
        "duplicates_in_batch": result.duplicates_in_batch,
        "duplicates_in_silver": result.duplicates_in_silver,
        "superseded": result.superseded,
        "conflicts": result.conflicts,
        "quarantined": result.quarantined,
        "silver_rows_before": result.silver_rows_before,
        "silver_rows_after": result.silver_rows_after,
        "accounted": result.accounted,
    }


def orders(
    context: AssetExecutionContext, lakescore: LakescoreResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    settings = lakescore.settings()
    spark = lakescore.spark()
    # A missing landing folder or CDNOW file, files without the contract's columns, or a
    # batch whose counts do not add up (its message names every count; its files stay new).
    with permanent_errors(FileNotFoundError, ValueError, IngestAccountingError):
        results = ingest_configured(spark, settings)
    for result in results:
        context.log.info(f"ingest: {result}")
        if not result.accounted:
            # Permanent: a retry would skip the files just written and hide the gap.
            raise permanent_failure(
                f"row accounting does not hold for {result.source_file}: "
                f"{'; '.join(result.accounting_errors())} ({result.counts()})"
            )
    by_source = {r.source_file.rsplit("/", 1)[-1]: r for r in results}
    order_result = by_source.get("orders", results[0])
    customer_result = by_source.get("customers")
    meta = _ingest_metadata(order_result)
    yield MaterializeResult(asset_key=BRONZE_ORDERS_KEY, metadata=meta)
    yield MaterializeResult(asset_key=SILVER_ORDERS_KEY, metadata=meta)
    yield MaterializeResult(
        asset_key=SILVER_CUSTOMERS_KEY,
        metadata=_ingest_metadata(customer_result)
        if customer_result
        else {"source": "none: CDNOW has orders only"},
    )
    if order_result.skipped:
        yield AssetCheckResult(
            asset_key=BRONZE_ORDERS_KEY,
            check_name=BRONZE_CONTRACT,
            passed=True,
            description="no new order files: nothing to check",
        )
        return
    batch = read_table(spark, settings, BRONZE_ORDERS).where(
        F.col("batch_id") == F.lit(order_result.batch_id)
    )
    contract = contracts.BRONZE_ORDERS
    checked = check_result(
        check_contract(batch, contract=contract, docs_dir=docs_dir(settings, contract)),
        batch_id=order_result.batch_id,
    )
    yield AssetCheckResult(
        asset_key=BRONZE_ORDERS_KEY,
        check_name=BRONZE_CONTRACT,
        passed=checked.passed,
        severity=AssetCheckSeverity.WARN,
        description=checked.description,
        metadata=checked.metadata,
    )


def customer_features(
    context: AssetExecutionContext, lakescore: LakescoreResource
) -> MaterializeResult:
    settings = lakescore.settings()
    result = build_customer_features(
        lakescore.spark(), settings, as_of=partition_date(context.partition_key)
    )
    return MaterializeResult(
        metadata={
            "customers": result.customers,
            "delta_version": result.table_version,
            "silver_version": result.silver_version,
        }
    )


def build_lakehouse_assets(
    partitions: DailyPartitionsDefinition,
) -> tuple[list[AssetsDefinition], list[AssetChecksDefinition]]:
    ingest = multi_asset(
        specs=[
            AssetSpec(BRONZE_ORDERS_KEY, description="Raw order rows with ingest metadata."),
            AssetSpec(
                SILVER_ORDERS_KEY,
                deps=[BRONZE_ORDERS_KEY],
                description="Typed, deduplicated orders.",
            ),
            AssetSpec(
                SILVER_CUSTOMERS_KEY,
                description="Typed customer profiles, one row per customer (landing data only).",
            ),
        ],
        check_specs=[
            AssetCheckSpec(
                BRONZE_CONTRACT,
                asset=BRONZE_ORDERS_KEY,
                description="Bronze contract on the batch just ingested (warns; bronze is raw).",
            )
        ],
        partitions_def=partitions,
        group_name="lakehouse",
    )(orders)
    features = asset(
        key=CUSTOMER_FEATURES_KEY,
        deps=[SILVER_ORDERS_KEY, SILVER_CUSTOMERS_KEY],
        partitions_def=partitions,
        group_name="lakehouse",
        description="Point-in-time customer features as of the score date (orders before it only).",
    )(customer_features)
    checks = build_contract_checks(
        silver_orders=SILVER_ORDERS_KEY,
        silver_customers=SILVER_CUSTOMERS_KEY,
        features=CUSTOMER_FEATURES_KEY,
    )
    return [ingest, features], checks
