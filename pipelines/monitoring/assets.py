"""Backtests: once a score date's labels have matured, how good were that night's predictions."""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pyspark.sql import functions as F

from jobs.monitoring import run_matured_backtests
from jobs.platform import read_table
from pipelines.keys import BACKTESTS_KEY, HISTORY_KEY, SILVER_ORDERS_KEY
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource
from schemas.tables import BACKTESTS


def backtests(context: AssetExecutionContext, lakescore: LakescoreResource) -> MaterializeResult:
    settings, spark = lakescore.settings(), lakescore.spark()
    dates = run_matured_backtests(spark, settings, as_of=partition_date(context.partition_key))
    lines = []
    if dates:
        rows = (
            read_table(spark, settings, BACKTESTS)
            .where(F.col("score_date").isin(dates) & (F.col("model_name") == settings.model.name))
            .orderBy("score_date", "model_role")
            .collect()
        )
        lines = [
            f"- {r.score_date} {r.model_role} v{r.model_version}: AUC {r.auc:.4f}, "
            f"lift {r.lift_top_decile:.2f} ({r.customers:,} customers)"
            for r in rows
        ]
    return MaterializeResult(
        metadata={
            "backtested_dates": [d.isoformat() for d in dates],
            "results": MetadataValue.md("\n".join(lines) or "no score date matured tonight"),
        }
    )


def build_monitoring_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    return [
        asset(
            key=BACKTESTS_KEY,
            deps=[HISTORY_KEY, SILVER_ORDERS_KEY],
            partitions_def=partitions,
            group_name="monitoring",
            description=(
                "Realised ROC AUC and top-decile lift of every scored date whose label window "
                "closed before this night (monitoring.backtests); read by the retrain sensor."
            ),
        )(backtests)
    ]
