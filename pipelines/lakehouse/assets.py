"""Orders into bronze and silver, point-in-time features into gold, and the features contract."""

from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
    multi_asset,
)
from pyspark.sql import functions as F

from jobs.contracts import validate
from jobs.features import build_customer_features
from jobs.ingest import cdnow_path, ingest_orders
from jobs.lake import read_table
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource
from schemas.contracts import GOLD_CUSTOMER_FEATURES
from schemas.tables import CUSTOMER_FEATURES

BRONZE_ORDERS_KEY = AssetKey(["bronze", "orders"])
SILVER_ORDERS_KEY = AssetKey(["silver", "orders"])
CUSTOMER_FEATURES_KEY = AssetKey(["gold", "customer_features"])


def build_lakehouse_assets(
    partitions: DailyPartitionsDefinition,
) -> tuple[list[AssetsDefinition], list[AssetChecksDefinition]]:
    @multi_asset(
        specs=[
            AssetSpec(BRONZE_ORDERS_KEY, description="Raw order rows with ingest metadata."),
            AssetSpec(
                SILVER_ORDERS_KEY,
                deps=[BRONZE_ORDERS_KEY],
                description="Typed, deduplicated orders.",
            ),
        ],
        partitions_def=partitions,
        group_name="lakehouse",
    )
    def orders(context: AssetExecutionContext, lakescore: LakescoreResource):  # type: ignore[no-untyped-def]
        settings = lakescore.settings()
        result = ingest_orders(lakescore.spark(), settings, path=cdnow_path())
        context.log.info(f"ingest: {result}")
        meta: dict[str, Any] = {
            "source_file": result.source_file,
            "skipped_already_ingested": result.skipped,
            "rows_read": result.rows_read,
            "quarantined": result.quarantined,
        }
        yield MaterializeResult(asset_key=BRONZE_ORDERS_KEY, metadata=meta)
        yield MaterializeResult(
            asset_key=SILVER_ORDERS_KEY,
            metadata={
                "inserted": result.silver_inserted,
                "duplicates_dropped": result.duplicates_dropped,
            },
        )

    @asset(
        key=CUSTOMER_FEATURES_KEY,
        deps=[SILVER_ORDERS_KEY],
        partitions_def=partitions,
        group_name="lakehouse",
        description="Point-in-time customer features as of the score date (orders before it only).",
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

    @asset_check(
        asset=CUSTOMER_FEATURES_KEY,
        blocking=True,
        description="Great Expectations contract on the night's feature partition.",
    )
    def customer_features_contract(
        context: AssetCheckExecutionContext, lakescore: LakescoreResource
    ) -> AssetCheckResult:
        settings = lakescore.settings()
        as_of = partition_date(_partition_key(context))
        frame = read_table(lakescore.spark(), settings, CUSTOMER_FEATURES).where(
            F.col("as_of_date") == F.lit(as_of)
        )
        result = validate(frame, contract=GOLD_CUSTOMER_FEATURES)
        return AssetCheckResult(
            passed=result.success,
            severity=AssetCheckSeverity.ERROR,
            description=result.summary(),
            metadata={
                "partition": as_of.isoformat(),
                "expectations": len(result.outcomes),
                "failed": MetadataValue.json(
                    [
                        {
                            "expectation": f.expectation,
                            "column": f.column,
                            "unexpected_count": f.unexpected_count,
                        }
                        for f in result.failures
                    ]
                ),
            },
        )

    return [orders, customer_features], [customer_features_contract]


def _partition_key(context: AssetCheckExecutionContext) -> str:
    """The run's partition (asset checks on partitioned assets run inside the partitioned run)."""
    key = context.run.tags.get("dagster/partition")
    if not key:
        raise ValueError("the features contract runs only inside a partitioned run")
    return key
