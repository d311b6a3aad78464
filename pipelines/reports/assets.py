"""The nightly HTML report, written next to the run's data and linked from the Dagster UI."""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from jobs.monitoring import build_night_report
from pipelines.keys import MONGO_PREDICTIONS_KEY, NIGHT_REPORT_KEY
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource


def night_report(context: AssetExecutionContext, lakescore: LakescoreResource) -> MaterializeResult:
    settings = lakescore.settings()
    report = build_night_report(
        lakescore.spark(), settings, score_date=partition_date(context.partition_key)
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
            deps=[MONGO_PREDICTIONS_KEY],
            partitions_def=partitions,
            group_name="reports",
            description="HTML report of the night: coverage, score distribution, drift, challenger, sync.",
        )(night_report)
    ]
