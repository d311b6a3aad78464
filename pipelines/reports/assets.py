"""The nightly HTML report, written next to the run's data and linked from the Dagster UI."""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetRecordsFilter,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from jobs.monitoring import build_night_report
from pipelines.keys import MONGO_PREDICTIONS_KEY, NIGHT_REPORT_KEY, ONLINE_EVAL_KEY
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource


def night_sync(context: AssetExecutionContext) -> dict[str, Any] | None:
    """The metadata of this partition's latest serving sync, as its asset recorded it."""
    result = context.instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=MONGO_PREDICTIONS_KEY, asset_partitions=[context.partition_key]
        ),
        limit=1,
    )
    if not result.records:
        return None
    materialization = result.records[0].asset_materialization
    if materialization is None:
        return None
    return {key: value.value for key, value in materialization.metadata.items()}


def night_report(context: AssetExecutionContext, lakescore: LakescoreResource) -> MaterializeResult:
    """Write the night's HTML report (its sync section from the serving asset's record)."""
    settings = lakescore.settings()
    report = build_night_report(
        lakescore.spark(),
        settings,
        score_date=partition_date(context.partition_key),
        sync=night_sync(context),
    )
    top_drift = sorted(report.feature_psi.items(), key=lambda kv: -kv[1])[:5]
    return MaterializeResult(
        metadata={
            "report": MetadataValue.path(str(report.path)),
            "report_url": MetadataValue.url(report.path.as_uri()),
            "coverage": report.coverage,
            "customers_scored": report.customers_scored,
            "score_psi": report.score_psi if report.score_psi is not None else "n/a",
            "previous_score_date": str(report.previous_score_date),
            "top_feature_drift": MetadataValue.md(
                "\n".join(f"- `{name}`: {value:.4f}" for name, value in top_drift) or "n/a"
            ),
        }
    )


def build_report_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    return [
        asset(
            key=NIGHT_REPORT_KEY,
            deps=[MONGO_PREDICTIONS_KEY, ONLINE_EVAL_KEY],
            partitions_def=partitions,
            group_name="reports",
            description=(
                "HTML report of the night: coverage, score distribution, drift, challenger, "
                "gate, calibration, sync, and the online evaluation of served answers."
            ),
        )(night_report)
    ]
