"""Backtests: once a score date's labels have matured, how good were that night's predictions;
the online evaluation: once a serving day's labels have matured, how good were the answers."""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pyspark.sql import functions as F

from jobs.monitoring import run_matured_backtests, run_online_evaluation
from jobs.platform import read_table
from pipelines.keys import BACKTESTS_KEY, HISTORY_KEY, ONLINE_EVAL_KEY, SILVER_ORDERS_KEY
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource
from schemas.tables import BACKTESTS, ONLINE_EVAL


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


def _num(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return "n/a"
    if low is None or high is None:
        return f"{value:.4f}"
    return f"{value:.4f} [{low:.4f}, {high:.4f}]"


def online_eval(context: AssetExecutionContext, lakescore: LakescoreResource) -> MaterializeResult:
    settings, spark = lakescore.settings(), lakescore.spark()
    run = run_online_evaluation(spark, settings, as_of=partition_date(context.partition_key))
    lines = []
    if run.rows:
        rows = (
            read_table(spark, settings, ONLINE_EVAL)
            .where(F.col("served_date").isin(run.evaluated))
            .orderBy("served_date", "model_name", "experiment", "arm", "source")
            .collect()
        )
        lines = [
            f"- {r.served_date} {r.model_name} v{r.model_version} "
            f"{r.experiment or '-'}/{r.arm or '-'} {r.source}: AUC {_num(r.auc, r.auc_low, r.auc_high)}"
            f", observed/expected {_num(r.observed_to_expected)} ({r.customers:,} customers)"
            for r in rows
        ]
    return MaterializeResult(
        metadata={
            "evaluated_days": [d.isoformat() for d in run.evaluated],
            "rows": run.rows,
            "results": MetadataValue.md(
                "\n".join(lines) or "no serving day matured tonight (or api.served_log is off)"
            ),
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
        )(backtests),
        asset(
            key=ONLINE_EVAL_KEY,
            deps=[SILVER_ORDERS_KEY],
            partitions_def=partitions,
            group_name="monitoring",
            description=(
                "The answers the API served (monitoring.served, api.served_log), judged once "
                "the label window of their serving day closed: realised ROC AUC, lift and "
                "calibration per model version, experiment and arm, with intervals "
                "(monitoring.online_eval); read by the retrain sensor and the night report."
            ),
        )(online_eval),
    ]
