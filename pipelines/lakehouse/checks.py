"""Data-contract asset checks: silver tables and the night's gold partition (all blocking)."""

from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
)
from pyspark.sql import functions as F

from jobs.features import previous_partition_rows
from jobs.lakehouse import ContractResult, check_contract
from jobs.platform import read_table, table_exists
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource
from schemas import contracts
from schemas.settings import Settings
from schemas.tables import CUSTOMER_FEATURES, SILVER_CUSTOMERS, SILVER_ORDERS, TableSpec


def docs_dir(settings: Settings, contract: contracts.Contract) -> Path | None:
    if not settings.lakehouse.build_data_docs:
        return None
    root = settings.lakehouse.data_docs_dir or f"{settings.data_dir}/gx_docs"
    return Path(root).expanduser().resolve() / contract.name


def check_result(result: ContractResult, **extra: Any) -> AssetCheckResult:
    """The Dagster view of a contract run: which expectation failed on how many rows."""
    metadata: dict[str, Any] = {
        "expectations": len(result.outcomes),
        "rows": result.rows,
        "failed": MetadataValue.json(
            [
                {
                    "expectation": f.expectation,
                    "column": f.column,
                    "unexpected_count": f.unexpected_count,
                    "element_count": f.element_count,
                    "detail": f.detail,
                }
                for f in result.failures
            ]
        ),
        **extra,
    }
    if result.docs_path:
        metadata["data_docs"] = MetadataValue.url(result.docs_path)
    return AssetCheckResult(
        passed=result.success,
        severity=AssetCheckSeverity.ERROR,
        description=result.summary(),
        metadata=metadata,
    )


def silver_contract(
    lakescore: LakescoreResource, *, spec: TableSpec, contract: contracts.Contract
) -> AssetCheckResult:
    """The contract on a whole silver table (passes while the table has no data yet)."""
    settings = lakescore.settings()
    spark = lakescore.spark()
    if not table_exists(spark, settings, spec):
        return AssetCheckResult(passed=True, description=f"{spec.name} has no data yet")
    frame = read_table(spark, settings, spec)
    return check_result(
        check_contract(frame, contract=contract, docs_dir=docs_dir(settings, contract))
    )


def customer_features_contract(
    context: AssetCheckExecutionContext, lakescore: LakescoreResource
) -> AssetCheckResult:
    """The contract on the night's feature partition, row-count change included."""
    settings = lakescore.settings()
    spark = lakescore.spark()
    as_of = partition_date(_partition_key(context))
    frame = read_table(spark, settings, CUSTOMER_FEATURES).where(
        F.col("as_of_date") == F.lit(as_of)
    )
    previous = previous_partition_rows(spark, settings, as_of=as_of)
    contract = contracts.GOLD_CUSTOMER_FEATURES
    result = check_contract(
        frame,
        contract=contract,
        previous_rows=previous[1] if previous else None,
        max_row_count_change=settings.lakehouse.max_row_count_change,
        docs_dir=docs_dir(settings, contract),
    )
    return check_result(
        result,
        partition=as_of.isoformat(),
        previous_partition=previous[0].isoformat() if previous else None,
        previous_rows=previous[1] if previous else None,
    )


def _silver_check(
    key: AssetKey, spec: TableSpec, contract: contracts.Contract
) -> AssetChecksDefinition:
    @asset_check(
        asset=key,
        name=f"{contract.name}_contract",
        blocking=True,
        description=f"Great Expectations contract on {spec.name} (whole table).",
    )
    def _check(lakescore: LakescoreResource) -> AssetCheckResult:
        return silver_contract(lakescore, spec=spec, contract=contract)

    return _check


def build_contract_checks(
    *, silver_orders: AssetKey, silver_customers: AssetKey, features: AssetKey
) -> list[AssetChecksDefinition]:
    features_check = asset_check(
        asset=features,
        blocking=True,
        description="Great Expectations contract on the night's feature partition: keys, "
        "ranges, categories, columns, and the row-count change against the previous partition.",
    )(customer_features_contract)
    return [
        _silver_check(silver_orders, SILVER_ORDERS, contracts.SILVER_ORDERS),
        _silver_check(silver_customers, SILVER_CUSTOMERS, contracts.SILVER_CUSTOMERS),
        features_check,
    ]


def _partition_key(context: AssetCheckExecutionContext) -> str:
    """The run's partition (asset checks on partitioned assets run inside the partitioned run)."""
    key = context.run.tags.get("dagster/partition")
    if not key:
        raise ValueError("the features contract runs only inside a partitioned run")
    return key
