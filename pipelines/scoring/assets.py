"""Nightly scoring into predictions.history and predictions.current, and its blocking checks.

Every configured model with a champion is scored (jobs/scoring/run.py); the metadata names
them. The run row and its checks follow the primary model (jobs/monitoring/score_runs.py).

The scoring asset records the run in ``monitoring.score_runs``; the checks judge that
row against the configured limits (coverage floor, PSI limits). Both checks are
blocking: a night that fails one does not reach the serving sync downstream.
"""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    multi_asset,
    multi_asset_check,
)

from jobs.monitoring import (
    champion_scores,
    histogram_markdown,
    limit_failures,
    read_score_run,
    record_score_run,
    score_histogram,
)
from jobs.scoring import ScoringError, score_date
from pipelines.errors import permanent_errors
from pipelines.keys import CHAMPION_MODEL_KEY, CURRENT_KEY, CUSTOMER_FEATURES_KEY, HISTORY_KEY
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource

CHECK_NAMES = ("score_coverage", "score_drift")


def predictions(
    context: AssetExecutionContext, lakescore: LakescoreResource
) -> Iterator[MaterializeResult]:
    """Score the partition's date with every model, record the run (monitoring.score_runs)."""
    settings = lakescore.settings()
    spark = lakescore.spark()
    # No champion alias, no feature partition, features that do not fit the model.
    with permanent_errors(ScoringError):
        result = score_date(
            spark,
            settings,
            score_date=partition_date(context.partition_key),
            run_id=context.run.run_id,
        )
    run = record_score_run(spark, settings, result=result)
    common: dict[str, Any] = {
        "model": result.model_name,
        "model_version": result.model_version,
        "rows": result.rows,
        "duration_s": round(result.duration_s, 3),
        # Every configured model scored tonight (name -> champion version), and those
        # skipped for want of a champion; monitoring below follows the primary model.
        "models": MetadataValue.json(result.models),
        "skipped_models": ", ".join(result.skipped_models) or "none",
    }
    yield MaterializeResult(
        asset_key=HISTORY_KEY,
        metadata={
            **common,
            "delta_version": result.history_version,
            "challenger_version": result.challenger_version or "none",
            "feature_table_version": result.feature_table_version,
            "predictors": MetadataValue.json(result.predictors),  # compiled or lightgbm
            "feature_reader": result.feature_reader,  # pyarrow or spark
            "coverage": run.coverage,
            "score_psi": run.score_psi if run.score_psi is not None else "n/a",
            "score_histogram": MetadataValue.md(
                histogram_markdown(
                    score_histogram(
                        champion_scores(
                            spark,
                            settings,
                            score_date=result.score_date,
                            version=result.history_version,
                        )
                    )
                )
            ),
        },
    )
    yield MaterializeResult(
        asset_key=CURRENT_KEY,
        metadata={
            **common,
            "delta_version": result.current_version,
            "update_mode": result.current_mode,
            "update_modes": MetadataValue.json(result.current_modes),
        },
    )


def scoring_limits(
    context: AssetCheckExecutionContext, lakescore: LakescoreResource
) -> Iterator[AssetCheckResult]:
    """The night's score_runs row against the configured coverage and drift limits."""
    settings = lakescore.settings()
    key = context.run.tags.get("dagster/partition")
    if not key:
        raise ValueError("the scoring checks run only inside a partitioned run")
    run = read_score_run(
        lakescore.spark(), settings, run_id=context.run.run_id, score_date=partition_date(key)
    )
    if run is None:
        for name in CHECK_NAMES:
            yield AssetCheckResult(
                check_name=name,
                asset_key=CURRENT_KEY,
                passed=False,
                severity=AssetCheckSeverity.ERROR,
                description=f"no monitoring.score_runs row for run {context.run.run_id}",
            )
        return
    failures = limit_failures(run, settings)
    metadata = {
        "coverage": run.coverage,
        "customers_scored": run.customers_scored,
        "customers_known": run.customers_known,
        "score_psi": run.score_psi if run.score_psi is not None else "n/a",
        "previous_score_date": str(run.previous_score_date),
        "feature_psi": MetadataValue.json(run.feature_psi),
    }
    for name, limit in zip(CHECK_NAMES, ("coverage", "drift"), strict=True):
        yield AssetCheckResult(
            check_name=name,
            asset_key=CURRENT_KEY,
            passed=limit not in failures,
            severity=AssetCheckSeverity.ERROR,
            description=failures.get(limit, f"{limit} within limits"),
            metadata=metadata,
        )


def build_scoring_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    scoring = multi_asset(
        specs=[
            AssetSpec(
                HISTORY_KEY,
                deps=[CUSTOMER_FEATURES_KEY, CHAMPION_MODEL_KEY],
                description="Append-only prediction history, partitioned by score date.",
            ),
            AssetSpec(
                CURRENT_KEY,
                deps=[HISTORY_KEY],
                description="Latest score per customer and model (change data feed on).",
            ),
        ],
        partitions_def=partitions,
        group_name="scoring",
    )(predictions)
    limits = multi_asset_check(
        specs=[
            AssetCheckSpec(
                CHECK_NAMES[0],
                asset=CURRENT_KEY,
                blocking=True,
                description="Share of featured customers that got a valid score, vs a floor.",
            ),
            AssetCheckSpec(
                CHECK_NAMES[1],
                asset=CURRENT_KEY,
                blocking=True,
                description="PSI of scores and top features against the previous scored date.",
            ),
        ],
    )(scoring_limits)
    return [scoring, limits]
