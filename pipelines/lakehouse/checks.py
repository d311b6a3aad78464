"""Data-contract asset checks: silver tables (the night's batch, or whole) and the night's gold
partition, all blocking."""

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
    lakescore: LakescoreResource,
    *,
    spec: TableSpec,
    contract: contracts.Contract,
    context: AssetCheckExecutionContext | None = None,
    key: AssetKey | None = None,
) -> AssetCheckResult:
    """The contract on a silver table (passes while the table has no data yet).

    ``lakehouse.silver_contract_scope: batch`` (with the run's ``context`` and the
    asset's ``key``): only the rows the run's merge wrote, found by the batch id its
    materialization recorded; nothing to check when the run ingested nothing. Without a
    batch recorded by this run (the check run on its own), and with ``table``, every row.
    """
    settings = lakescore.settings()
    batch = settings.lakehouse.silver_contract_scope == "batch" and context and key
    written = written_by_run(context, key) if batch and context and key else None
    if written is not None and written.get("skipped_already_ingested"):
        return AssetCheckResult(  # decided without a Spark job
            passed=True,
            description=f"{spec.name}: no new rows in this run, nothing to check (the "
            "weekly maintenance job validates the whole table)",
            metadata={"scope": "batch", "rows": 0},
        )
    spark = lakescore.spark()
    if not table_exists(spark, settings, spec):
        return AssetCheckResult(passed=True, description=f"{spec.name} has no data yet")
    frame = read_table(spark, settings, spec)
    extra: dict[str, Any] = {"scope": "table"}
    if batch:
        if written is None:
            extra["scope_reason"] = "no batch recorded by this run: the whole table"
        else:
            batch_id = str(written["batch_id"])
            frame = frame.where(F.col("batch_id") == F.lit(batch_id))
            extra = {
                "scope": "batch",
                "batch_id": batch_id,
                # The table-level counts, from Delta's log and the merge's metrics: the
                # ingest step failed the night already if they did not add up.
                **{k: written.get(k) for k in _TABLE_COUNTS},
            }
    return check_result(
        check_contract(frame, contract=contract, docs_dir=docs_dir(settings, contract)), **extra
    )


# What the ingest recorded about the whole table, shown beside a batch's contract.
_TABLE_COUNTS = ("silver_rows_before", "silver_rows_after", "silver_inserted", "accounted")


def written_by_run(context: AssetCheckExecutionContext, key: AssetKey) -> dict[str, Any] | None:
    """The ingest metadata of ``key``'s materialization in this run (None: none in it)."""
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.run_id != context.run.run_id or event.asset_materialization is None:
        return None
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    if not metadata.get("batch_id") and not metadata.get("skipped_already_ingested"):
        return None  # not an ingest's record (CDNOW has no customers, say)
    return metadata


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
        description=f"Great Expectations contract on {spec.name}: the rows the night's "
        "merge wrote (lakehouse.silver_contract_scope: batch), or the whole table.",
    )
    def _check(
        context: AssetCheckExecutionContext, lakescore: LakescoreResource
    ) -> AssetCheckResult:
        return silver_contract(lakescore, spec=spec, contract=contract, context=context, key=key)

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
