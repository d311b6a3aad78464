"""Scoring monitoring: one ``monitoring.score_runs`` row per run, and the limits it must meet.

A row holds coverage (customers scored / customers in the feature partition),
score quantiles, the population stability index of the champion's scores and of
the model's most important features against the previous scored date, and the
run's duration. ``limit_failures`` says which configured limits a row breaks;
the pipeline turns that into blocking checks, so a bad night never syncs. Once a
score date's labels mature (H days later), ``run_matured_backtests`` (jobs/monitoring/backtests.py)
writes the realised AUC and top-decile lift of its predictions to ``monitoring.backtests``.

Monitoring follows the primary model (``model.name``) only; additional models scored
the same night (jobs/scoring/run.py) have rows in history and current but no score_runs
row, drift check or backtest of their own. A regression primary model (label
``spend``) counts finite non-negative amounts as valid scores and has no backtests.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.monitoring.psi import population_stability_index
from jobs.platform import CHAMPION, ensure_table, load_booster, read_table, table_exists, table_path
from jobs.scoring import ScoreResult
from schemas.settings import Settings, primary_definition
from schemas.tables import (
    CUSTOMER_FEATURES,
    PREDICTIONS_HISTORY,
    PUBLICATIONS,
    SCORE_RUNS,
)

QUANTILES = {
    "score_p01": 0.01,
    "score_p10": 0.1,
    "score_p50": 0.5,
    "score_p90": 0.9,
    "score_p99": 0.99,
}


@dataclass(frozen=True, kw_only=True)
class ScoreRun:
    run_id: str
    score_date: dt.date
    model_name: str
    model_version: str
    customers_known: int
    customers_scored: int
    coverage: float
    score_p01: float
    score_p10: float
    score_p50: float
    score_p90: float
    score_p99: float
    score_mean: float
    previous_score_date: dt.date | None
    score_psi: float | None
    feature_psi_json: str
    duration_s: float
    feature_table_version: int
    history_version: int
    recorded_at: dt.datetime
    # Each champion model's rows and distinct customers for the date in history, counted
    # from the table at ``history_version`` (None on rows recorded before the audit had them).
    rows_by_model_json: str | None = None
    # The limits the run broke when it was recorded ({} passed: it may be published; None
    # on rows recorded before the audit was kept).
    audit_json: str | None = None

    @property
    def rows_by_model(self) -> dict[str, dict[str, int]]:
        return json.loads(self.rows_by_model_json) if self.rows_by_model_json else {}

    @property
    def feature_psi(self) -> dict[str, float | None]:
        """PSI per drift feature; None where it is undefined (no rows on either date)."""
        return {
            k: None if v is None else float(v) for k, v in json.loads(self.feature_psi_json).items()
        }


def champion_scores(
    spark: SparkSession, settings: Settings, *, score_date: dt.date, version: int | None = None
) -> DataFrame:
    return read_table(spark, settings, PREDICTIONS_HISTORY, version=version).where(
        (F.col("score_date") == F.lit(score_date))
        & (F.col("model_name") == settings.model.name)
        & (F.col("model_role") == CHAMPION)
    )


def previous_score_date(
    spark: SparkSession, settings: Settings, *, score_date: dt.date, version: int | None = None
) -> dt.date | None:
    """The latest date before ``score_date`` the champion scored (the drift reference),
    skipping nights held back by their audit: a feature that went null two nights running
    is compared with the last good night, not with the first bad one."""
    history = read_table(spark, settings, PREDICTIONS_HISTORY, version=version).where(
        (F.col("score_date") < F.lit(score_date))
        & (F.col("model_name") == settings.model.name)
        & (F.col("model_role") == CHAMPION)
    )
    held = held_dates(spark, settings)
    if held:
        history = history.where(~F.col("score_date").isin(held))
    row = history.agg(F.max("score_date")).first()
    return None if row is None else row[0]


def held_dates(spark: SparkSession, settings: Settings) -> list[dt.date]:
    """Score dates whose every recorded run failed its audit and none was published since."""
    if not table_exists(spark, settings, SCORE_RUNS):
        return []
    runs = read_table(spark, settings, SCORE_RUNS)
    if "audit_json" not in runs.columns:
        return []
    passed = F.col("audit_json").isNull() | (F.col("audit_json") == "{}")
    if table_exists(spark, settings, PUBLICATIONS):
        out = read_table(spark, settings, PUBLICATIONS).select("run_id").distinct()
        runs = runs.join(out.withColumn("published", F.lit(True)), "run_id", "left")
        passed = passed | F.col("published").isNotNull()
    rows = (
        runs.groupBy("score_date")
        .agg(F.max(passed.cast("int")).alias("ok"))
        .where(F.col("ok") == 0)
        .collect()
    )
    return sorted(r["score_date"] for r in rows)


def summarize_run(spark: SparkSession, settings: Settings, *, result: ScoreResult) -> ScoreRun:
    """Coverage, quantiles and drift of one scoring run (reads the versions the run wrote)."""
    scores = _column(
        champion_scores(
            spark, settings, score_date=result.score_date, version=result.history_version
        ),
        "score",
    )
    binary = primary_definition(settings).task == "binary"
    valid = scores[np.isfinite(scores) & (scores >= 0.0) & ((scores <= 1.0) | (not binary))]
    features = read_table(spark, settings, CUSTOMER_FEATURES, version=result.feature_table_version)
    today = features.where(F.col("as_of_date") == F.lit(result.score_date))
    known = today.count()
    rows_by_model = {
        row["model_name"]: {"rows": int(row["rows"]), "customers": int(row["customers"])}
        for row in read_table(spark, settings, PREDICTIONS_HISTORY, version=result.history_version)
        .where(
            (F.col("score_date") == F.lit(result.score_date)) & (F.col("model_role") == CHAMPION)
        )
        .groupBy("model_name")
        .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("customer_id").alias("customers"))
        .collect()
    }
    previous = previous_score_date(
        spark, settings, score_date=result.score_date, version=result.history_version
    )
    score_psi: float | None = None
    feature_psi: dict[str, float | None] = {}
    if previous is not None:
        before = _column(
            champion_scores(spark, settings, score_date=previous, version=result.history_version),
            "score",
        )
        psi = population_stability_index(before, valid)
        score_psi = None if math.isnan(psi) else psi
        names = top_features(settings, version=result.model_version)
        earlier = features.where(F.col("as_of_date") == F.lit(previous))
        for name in names:
            psi = population_stability_index(_column(earlier, name), _column(today, name))
            feature_psi[name] = None if math.isnan(psi) else psi  # NaN: no rows on either date
    quantiles = (
        dict(zip(QUANTILES, np.quantile(valid, list(QUANTILES.values())), strict=True))
        if valid.size
        else dict.fromkeys(QUANTILES, math.nan)
    )
    return ScoreRun(
        run_id=result.run_id,
        score_date=result.score_date,
        model_name=result.model_name,
        model_version=result.model_version,
        customers_known=known,
        customers_scored=int(valid.size),
        coverage=float(valid.size / known) if known else 0.0,
        score_p01=float(quantiles["score_p01"]),
        score_p10=float(quantiles["score_p10"]),
        score_p50=float(quantiles["score_p50"]),
        score_p90=float(quantiles["score_p90"]),
        score_p99=float(quantiles["score_p99"]),
        score_mean=float(valid.mean()) if valid.size else math.nan,
        previous_score_date=previous,
        score_psi=score_psi,
        feature_psi_json=json.dumps(feature_psi, sort_keys=True),
        duration_s=result.duration_s,
        feature_table_version=result.feature_table_version,
        history_version=result.history_version,
        recorded_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        rows_by_model_json=json.dumps(rows_by_model, sort_keys=True),
    )


def top_features(settings: Settings, *, version: str) -> list[str]:
    """The model's ``scoring.drift_features`` most important features (by total gain)."""
    booster = load_booster(model_name=settings.model.name, version=version)
    gains = booster.feature_importance(importance_type="gain")
    order = np.argsort(-np.asarray(gains), kind="stable")
    names = booster.feature_name()
    return [names[i] for i in order[: settings.scoring.drift_features]]


def record_score_run(spark: SparkSession, settings: Settings, *, result: ScoreResult) -> ScoreRun:
    """Summarize the run and write its row (a retry of the same run replaces its row)."""
    run = summarize_run(spark, settings, result=result)
    run = replace(run, audit_json=json.dumps(limit_failures(run, settings), sort_keys=True))
    ensure_table(spark, settings, SCORE_RUNS)
    frame = spark.createDataFrame([tuple(asdict(run).values())], SCORE_RUNS.ddl)
    (
        frame.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"run_id = '{run.run_id}'")
        .option("mergeSchema", "true")  # tables recorded before a column was added gain it
        .save(table_path(settings, SCORE_RUNS))
    )
    return run


def read_score_run(
    spark: SparkSession, settings: Settings, *, run_id: str, score_date: dt.date
) -> ScoreRun | None:
    if not table_exists(spark, settings, SCORE_RUNS):
        return None
    rows = (
        read_table(spark, settings, SCORE_RUNS)
        .where((F.col("run_id") == run_id) & (F.col("score_date") == F.lit(score_date)))
        .collect()
    )
    return ScoreRun(**rows[0].asDict()) if rows else None


def limit_failures(run: ScoreRun, settings: Settings) -> dict[str, str]:
    """``{"coverage" | "drift" | "rows": reason}`` for each limit the run breaks.

    ``rows``: every champion model wrote exactly one row per customer of the feature
    partition (rows counted in history, customers in the features: two independent counts).
    """
    cfg = settings.scoring
    out: dict[str, str] = {}
    rows = rows_failures(run)
    if rows:
        out["rows"] = "; ".join(rows)
    if run.coverage < cfg.min_coverage:
        out["coverage"] = (
            f"coverage {run.coverage:.4f} ({run.customers_scored} of {run.customers_known} "
            f"customers) is below the floor {cfg.min_coverage}"
        )
    drift = []
    if run.score_psi is not None and run.score_psi > cfg.max_score_psi:
        drift.append(f"score PSI {run.score_psi:.3f} > {cfg.max_score_psi}")
    drift += [
        f"{name} PSI {psi:.3f} > {cfg.max_feature_psi}"
        for name, psi in run.feature_psi.items()
        if psi is not None and psi > cfg.max_feature_psi
    ]
    if drift:
        out["drift"] = f"against {run.previous_score_date}: " + "; ".join(drift)
    return out


def rows_failures(run: ScoreRun) -> list[str]:
    """What is wrong with the run's row counts (empty: every model wrote every customer once)."""
    counts = run.rows_by_model
    if run.rows_by_model_json is None:
        return []  # recorded before these counts existed: nothing to judge
    if run.model_name not in counts:
        return [f"{run.model_name} wrote no champion row for {run.score_date}"]
    out = []
    for model, count in sorted(counts.items()):
        if count["rows"] != run.customers_known:
            out.append(
                f"{model} wrote {count['rows']} rows for {run.customers_known} customers "
                "in the feature partition"
            )
        if count["customers"] != count["rows"]:
            out.append(
                f"{model} scored {count['rows'] - count['customers']} customers more than once"
            )
    return out


def _column(frame: DataFrame, name: str) -> np.ndarray:
    table = frame.select(F.col(name).cast("double")).toArrow()
    return np.asarray(table.column(0).to_numpy(zero_copy_only=False), dtype=np.float64)
