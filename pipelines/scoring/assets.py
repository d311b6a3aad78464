"""Nightly scoring: write, audit, publish.

``predictions.history`` is written first (every model, every customer: jobs/scoring/run.py)
and the run recorded in ``monitoring.score_runs``. The blocking checks on history then
audit that row (coverage floor, drift limits, one row per customer of the feature
partition). Only when they pass does ``predictions.current`` materialize (it is
published from the run's history rows), and the serving sync downstream of it. A
failed audit leaves current and MongoDB exactly as the night before; the held
night's scores stay in history under its run id (runbook: publishing a held night).
The run row and its checks follow the primary model (jobs/monitoring/score_runs.py).
"""

import datetime as dt
from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset_check,
)

from jobs.monitoring import (
    ScoreRun,
    champion_scores,
    histogram_markdown,
    limit_failures,
    read_score_run,
    record_score_run,
    score_histogram,
)
from jobs.scoring import ScoringError, publish_run, score_history
from pipelines.errors import permanent_errors
from pipelines.keys import CHAMPION_MODEL_KEY, CURRENT_KEY, CUSTOMER_FEATURES_KEY, HISTORY_KEY
from pipelines.partitions import partition_date
from pipelines.resources import LakescoreResource

CHECK_NAMES = ("score_coverage", "score_drift", "score_rows")
_LIMITS = ("coverage", "drift", "rows")


def predictions(context: AssetExecutionContext, lakescore: LakescoreResource) -> MaterializeResult:
    """Score the partition's date with every model into history, record the run."""
    settings = lakescore.settings()
    spark = lakescore.spark()
    # No champion alias, no feature partition, features that do not fit the model.
    with permanent_errors(ScoringError):
        result = score_history(
            spark,
            settings,
            score_date=partition_date(context.partition_key),
            run_id=context.run.run_id,
        )
    run = record_score_run(spark, settings, result=result)
    return MaterializeResult(
        metadata={
            "model": result.model_name,
            "model_version": result.model_version,
            "rows": result.rows,
            "duration_s": round(result.duration_s, 3),
            # Every configured model scored tonight (name -> champion version), and those
            # skipped for want of a champion; monitoring below follows the primary model.
            "models": MetadataValue.json(result.models),
            "skipped_models": ", ".join(result.skipped_models) or "none",
            "delta_version": result.history_version,
            "challenger_version": result.challenger_version or "none",
            "feature_table_version": result.feature_table_version,
            # Rows each task scored per model and predictor (compiled or lightgbm).
            "predictors": MetadataValue.json(result.predictors),
            "feature_reader": result.feature_reader,  # pyarrow or spark
            "coverage": run.coverage,
            "rows_by_model": MetadataValue.json(run.rows_by_model),
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


def current_predictions(
    context: AssetExecutionContext, lakescore: LakescoreResource
) -> MaterializeResult:
    """Publish the audited night: its champion rows from history into current."""
    settings = lakescore.settings()
    spark = lakescore.spark()
    day = partition_date(context.partition_key)
    run = this_runs_score_run(context, lakescore, score_date=day)
    if run is None:  # the history step of this run (or the run it re-executes) records one
        raise ScoringError(f"no monitoring.score_runs row for run {context.run.run_id}")
    # The blocking checks keep this step from running after a failed audit; judged again
    # here so that no path (a re-execution of this step alone) publishes a held night.
    failures = limit_failures(run, settings)
    if failures:
        raise Failure(
            description=f"run {run.run_id} failed its audit and is held back: "
            + "; ".join(failures.values()),
            allow_retries=False,
        )
    with permanent_errors(ScoringError):
        publication = publish_run(
            spark,
            settings,
            score_date=day,
            run_id=run.run_id,
            history_version=run.history_version,
            model_names=list(run.rows_by_model) or None,  # counted by the audit
            how="audited",
        )
    return MaterializeResult(
        metadata={
            "model": run.model_name,
            "model_version": run.model_version,
            "delta_version": publication.current_version,
            "history_version": run.history_version,
            "update_mode": publication.modes.get(run.model_name, ""),
            "update_modes": MetadataValue.json(publication.modes),
            "duration_s": round(publication.seconds, 3),
        },
    )


def this_runs_score_run(
    context: AssetExecutionContext | AssetCheckExecutionContext,
    lakescore: LakescoreResource,
    *,
    score_date: dt.date,
) -> ScoreRun | None:
    """The score_runs row this run wrote, or the run it re-executes wrote (its parent, root)."""
    ids = (context.run.run_id, context.run.parent_run_id, context.run.root_run_id)
    for run_id in dict.fromkeys(i for i in ids if i):
        run = read_score_run(
            lakescore.spark(), lakescore.settings(), run_id=run_id, score_date=score_date
        )
        if run is not None:
            return run
    return None


def scoring_limits(
    context: AssetCheckExecutionContext, lakescore: LakescoreResource
) -> Iterator[AssetCheckResult]:
    """The night's score_runs row against the configured limits: the audit before publishing."""
    settings = lakescore.settings()
    key = context.run.tags.get("dagster/partition")
    if not key:
        raise ValueError("the scoring checks run only inside a partitioned run")
    run = this_runs_score_run(context, lakescore, score_date=partition_date(key))
    if run is None:
        for name in CHECK_NAMES:
            yield AssetCheckResult(
                check_name=name,
                asset_key=HISTORY_KEY,
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
        "rows_by_model": MetadataValue.json(run.rows_by_model),
    }
    for name, limit in zip(CHECK_NAMES, _LIMITS, strict=True):
        yield AssetCheckResult(
            check_name=name,
            asset_key=HISTORY_KEY,
            passed=limit not in failures,
            severity=AssetCheckSeverity.ERROR,
            description=failures.get(limit, f"{limit} within limits"),
            metadata=metadata,
        )


def build_scoring_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    history = asset(
        key=HISTORY_KEY,
        deps=[CUSTOMER_FEATURES_KEY, CHAMPION_MODEL_KEY],
        partitions_def=partitions,
        group_name="scoring",
        description="Append-only prediction history, partitioned by score date (written first).",
    )(predictions)
    current = asset(
        key=CURRENT_KEY,
        deps=[HISTORY_KEY],
        partitions_def=partitions,
        group_name="scoring",
        description=(
            "Latest score per customer and model (change data feed on), published from "
            "history once the night's audit passed."
        ),
    )(current_predictions)
    descriptions = (
        "Share of featured customers that got a valid score, vs a floor.",
        "PSI of scores and top features against the previous scored date.",
        "Every champion model wrote exactly one row per customer of the feature partition.",
    )
    limits = multi_asset_check(
        specs=[
            AssetCheckSpec(name, asset=HISTORY_KEY, blocking=True, description=text)
            for name, text in zip(CHECK_NAMES, descriptions, strict=True)
        ],
    )(scoring_limits)
    return [history, current, limits]
