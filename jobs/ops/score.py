"""The scoring night's job alone: write, audit, publish, outside Dagster.

``python -m jobs.ops.score --date 1998-01-01`` (or through spark-submit) scores every
customer into ``predictions.history``, records and audits the run (the same limits as
the pipeline's blocking checks), and only then publishes it to ``predictions.current``.
A failed audit exits non-zero with the reasons; current is left as it was.

``publish_held`` is the runbook's way to publish a held night after a review.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.monitoring import ScoreRun, limit_failures, record_score_run
from jobs.platform import read_table, table_exists
from jobs.scoring import (
    Publication,
    ScoreResult,
    ScoringError,
    publish_run,
    publish_scored,
    score_history,
)
from schemas.settings import Settings, get_settings
from schemas.tables import PUBLICATIONS, SCORE_RUNS


class AuditFailedError(ScoringError):
    """The night was scored into history but failed its audit: it was not published."""

    def __init__(self, run: ScoreRun, failures: dict[str, str]) -> None:
        self.run = run
        self.failures = failures
        super().__init__(
            f"run {run.run_id} for {run.score_date} failed its audit and is held back "
            f"(predictions.current unchanged): {'; '.join(failures.values())}"
        )


@dataclass(frozen=True, kw_only=True)
class AuditedNight:
    result: ScoreResult
    run: ScoreRun


def score_audited(
    spark: SparkSession, settings: Settings, *, score_date: dt.date, run_id: str | None = None
) -> AuditedNight:
    """Write the night to history, audit its run row, publish it (or AuditFailedError)."""
    written = score_history(spark, settings, score_date=score_date, run_id=run_id)
    run = record_score_run(spark, settings, result=written)
    failures = limit_failures(run, settings)
    if failures:
        raise AuditFailedError(run, failures)
    published = publish_scored(spark, settings, written=written, how="audited")
    return AuditedNight(result=published, run=run)


def held_runs(spark: SparkSession, settings: Settings, *, score_date: dt.date) -> list[ScoreRun]:
    """The date's recorded runs that were never published, newest first."""
    if not table_exists(spark, settings, SCORE_RUNS):
        return []
    runs = read_table(spark, settings, SCORE_RUNS).where(F.col("score_date") == F.lit(score_date))
    if table_exists(spark, settings, PUBLICATIONS):
        done = read_table(spark, settings, PUBLICATIONS).select("run_id")
        runs = runs.join(done, "run_id", "left_anti")
    rows = runs.orderBy(F.col("recorded_at").desc()).collect()
    return [ScoreRun(**row.asDict()) for row in rows]


def publish_held(
    spark: SparkSession,
    settings: Settings,
    *,
    score_date: dt.date,
    reason: str,
    run_id: str | None = None,
) -> tuple[ScoreRun, Publication]:
    """Publish a night held back by its audit, after a review (``reason`` is recorded).

    ``run_id``: which held run (default: the date's newest held run). Its rows must still
    be in history (a later run of the date replaces them): else ScoringError.
    """
    if not reason.strip():
        raise ScoringError("publishing a held night needs a reason (what the review found)")
    held = held_runs(spark, settings, score_date=score_date)
    chosen = [r for r in held if run_id in (None, r.run_id)]
    if not chosen:
        which = f"run {run_id}" if run_id else "any run"
        raise ScoringError(f"no held (unpublished) {which} for {score_date.isoformat()}")
    run = chosen[0]
    publication = publish_run(
        spark,
        settings,
        score_date=score_date,
        run_id=run.run_id,
        history_version=None,  # the latest: its rows must not have been replaced since
        how=f"reviewed: {reason.strip()}",
    )
    return run, publication


def main(argv: list[str] | None = None) -> None:
    from jobs.platform import get_spark

    parser = argparse.ArgumentParser(description="Score every customer for one date.")
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--run-id", default=None)
    args = parser.parse_args(argv)

    settings = get_settings()
    spark = get_spark(settings)
    try:
        night = score_audited(spark, settings, score_date=args.date, run_id=args.run_id)
    except AuditFailedError as exc:
        raise SystemExit(f"error: {exc}") from exc
    print(f"{night.result} master={spark.sparkContext.master} coverage={night.run.coverage:.4f}")


if __name__ == "__main__":
    main()
