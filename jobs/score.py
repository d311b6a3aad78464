"""Nightly scoring: every customer of the feature partition for date D, with the champion.

One pass over the feature partition scores it with every model to score (the
champion, and the challenger in shadow) into ``predictions.history`` in one commit
(append-only; a re-run replaces exactly D's rows of the model). ``predictions.current``
is then updated from the rows just written (no second scoring pass); an older
score date never overwrites a newer one. Everything that can fail (missing
partition, missing alias, features that do not fit the model) fails before
anything is written.

Runs alone: ``python -m jobs.score --date 1998-01-01`` (or through spark-submit).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
from dataclasses import dataclass, field

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lake import ensure_table, read_table, table_exists, table_path, table_version
from jobs.registry import CHALLENGER, CHAMPION
from jobs.score_batches import ModelToScore, check_features, resolve_models, score_batches
from schemas.settings import Settings, get_settings
from schemas.tables import CUSTOMER_FEATURES, PREDICTIONS_CURRENT, PREDICTIONS_HISTORY

__all__ = ["ScoreResult", "ScoringError", "score_batches", "score_date"]
_ARROW_BATCH = "spark.sql.execution.arrow.maxRecordsPerBatch"


class ScoringError(RuntimeError):
    """Scoring refused to run; nothing was written."""


@dataclass(frozen=True, kw_only=True)
class ScoreResult:
    score_date: dt.date
    model_name: str
    model_version: str
    challenger_version: str | None
    rows: int
    run_id: str
    feature_table_version: int
    history_version: int
    current_version: int
    duration_s: float = 0.0
    current_mode: str = ""  # how current was updated: insert, replace or merge
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: checks, history, current


def score_date(
    spark: SparkSession, settings: Settings, *, score_date: dt.date, run_id: str | None = None
) -> ScoreResult:
    started = time.perf_counter()
    run_id = run_id or uuid.uuid4().hex
    model_name = settings.model.name
    models = resolve_models(settings, error=ScoringError)
    features, feature_version = feature_partition(spark, settings, score_date=score_date)
    check_features(features, models=models, model_name=model_name, error=ScoringError)
    seconds = {"checks": time.perf_counter() - started}

    ensure_table(spark, settings, PREDICTIONS_HISTORY)
    ensure_table(
        spark, settings, PREDICTIONS_CURRENT, properties={"delta.enableChangeDataFeed": "true"}
    )
    rows = prediction_rows(
        spark,
        features,
        models=models,
        model_name=model_name,
        score_date=score_date,
        run_id=run_id,
        feature_version=feature_version,
    )
    previous = spark.conf.get(_ARROW_BATCH)
    spark.conf.set(_ARROW_BATCH, str(settings.scoring.arrow_batch_rows))
    try:
        written = _replace_history_rows(spark, settings, rows, score_date=score_date)
    finally:
        spark.conf.set(_ARROW_BATCH, previous or "10000")
    history_version = table_version(spark, settings, PREDICTIONS_HISTORY)
    seconds["history"] = time.perf_counter() - started - sum(seconds.values())
    champion_rows = (
        read_table(spark, settings, PREDICTIONS_HISTORY, version=history_version)
        .where(
            (F.col("score_date") == F.lit(score_date))
            & (F.col("model_name") == model_name)
            & (F.col("model_role") == CHAMPION)
        )
        .select(*PREDICTIONS_CURRENT.columns)
    )
    mode = update_current(
        spark, settings, champion_rows, score_date=score_date, model_name=model_name
    )
    seconds["current"] = time.perf_counter() - started - sum(seconds.values())
    by_role = {m.role: m.version for m in models}
    return ScoreResult(
        score_date=score_date,
        model_name=model_name,
        model_version=by_role[CHAMPION],
        challenger_version=by_role.get(CHALLENGER),
        rows=written // len(models),
        run_id=run_id,
        feature_table_version=feature_version,
        history_version=history_version,
        current_version=table_version(spark, settings, PREDICTIONS_CURRENT),
        duration_s=time.perf_counter() - started,
        current_mode=mode,
        seconds=seconds,
    )


def feature_partition(
    spark: SparkSession, settings: Settings, *, score_date: dt.date
) -> tuple[DataFrame, int]:
    """The feature rows for ``score_date`` pinned to one table version, or ScoringError."""
    if not table_exists(spark, settings, CUSTOMER_FEATURES):
        raise ScoringError(f"{CUSTOMER_FEATURES.name} does not exist: build features first")
    version = table_version(spark, settings, CUSTOMER_FEATURES)
    features = read_table(spark, settings, CUSTOMER_FEATURES, version=version).where(
        F.col("as_of_date") == F.lit(score_date)
    )
    if not features.limit(1).collect():
        raise ScoringError(
            f"no feature partition {CUSTOMER_FEATURES.name}/as_of_date={score_date.isoformat()} "
            f"(table version {version}): build features for {score_date.isoformat()} first"
        )
    return features, version


def prediction_rows(
    spark: SparkSession,
    features: DataFrame,
    *,
    models: list[ModelToScore],
    model_name: str,
    score_date: dt.date,
    run_id: str,
    feature_version: int,
) -> DataFrame:
    """History rows (every model's score for every customer) from the feature rows."""
    # One Python worker per task; give each the cores the other tasks leave idle. Feature
    # files have several row groups (jobs.features.ROW_GROUP_BYTES), so a large partition
    # is read by as many tasks as there are cores, each predicting on one thread.
    tasks = max(1, features.rdd.getNumPartitions())
    threads = max(1, spark.sparkContext.defaultParallelism // tasks)
    scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    scored = score_batches(features, models=models, num_threads=threads)
    return scored.select(
        "customer_id",
        F.lit(model_name).alias("model_name"),
        "model_version",
        "model_role",
        "score",
        F.lit(score_date).alias("score_date"),
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
        F.lit(run_id).alias("run_id"),
        F.lit(feature_version).cast("bigint").alias("feature_table_version"),
    )


def update_current(
    spark: SparkSession,
    settings: Settings,
    rows: DataFrame,
    *,
    score_date: dt.date,
    model_name: str,
) -> str:
    """Put ``rows`` (one per customer, all dated ``score_date``) into current; returns the mode.

    - insert: current has no row of the model yet, a plain append;
    - replace: every row of the model is dated ``score_date`` or earlier (a normal
      night): the model's rows are rewritten as the new rows plus the customers
      not scored today, in one overwrite (no change-data files to write);
    - merge: some rows are newer (a backfill of a past date): only rows whose
      score date is not newer are updated.
    """
    path = table_path(settings, PREDICTIONS_CURRENT)
    of_model = read_table(spark, settings, PREDICTIONS_CURRENT).where(
        F.col("model_name") == model_name
    )
    newest = of_model.agg(F.max("score_date")).first()[0]  # type: ignore[index]
    if newest is None:
        rows.write.format("delta").mode("append").save(path)
        return "insert"
    if newest <= score_date:
        # Ids only first: on a normal night every customer of current is scored again
        # and nothing has to be kept, so the full rows never go through a join.
        gone = of_model.select("customer_id").join(
            rows.select("customer_id"), "customer_id", "left_anti"
        )
        replacement = rows
        if not gone.isEmpty():
            replacement = rows.unionByName(of_model.join(gone, "customer_id", "left_semi"))
        (
            replacement.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", f"model_name = '{model_name}'")
            .save(path)
        )
        return "replace"
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(rows.alias("s"), "t.customer_id = s.customer_id AND t.model_name = s.model_name")
        .whenMatchedUpdateAll(condition="s.score_date >= t.score_date")
        .whenNotMatchedInsertAll()
        .execute()
    )
    return "merge"


def _replace_history_rows(
    spark: SparkSession, settings: Settings, rows: DataFrame, *, score_date: dt.date
) -> int:
    """Replace D's rows of this model in history (one commit); returns the rows written."""
    condition = (
        f"score_date = DATE'{score_date.isoformat()}' AND model_name = '{settings.model.name}'"
    )
    path = table_path(settings, PREDICTIONS_HISTORY)
    rows.write.format("delta").mode("overwrite").option("replaceWhere", condition).save(path)
    last = DeltaTable.forPath(spark, path).history(1).select("operationMetrics").first()
    metrics = (last[0] if last else None) or {}
    return int(metrics.get("numOutputRows", 0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score every customer for one date.")
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--run-id", default=None)
    args = parser.parse_args(argv)
    from jobs.monitoring import record_score_run
    from jobs.spark import get_spark

    settings = get_settings()
    spark = get_spark(settings)
    result = score_date(spark, settings, score_date=args.date, run_id=args.run_id)
    run = record_score_run(spark, settings, result=result)
    print(f"{result} master={spark.sparkContext.master} coverage={run.coverage:.4f}")


if __name__ == "__main__":
    main()
