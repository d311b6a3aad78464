"""Score a range of past dates, skipping dates already scored with the same champion version.

``python -m jobs.ops.backfill --start 1997-06-01 --end 1997-06-30 [--step-days 7] [--force]``:
the scoring part of ``lakescore backfill`` (whole nights through Dagster, the same skip rule),
for ``spark-submit`` on a cluster without Dagster.
Dates are scored oldest first; each is recorded in ``monitoring.score_runs``, audited
and published to ``predictions.current`` only if its audit passed: a date that fails is
held (its scores stay in history, ``lakescore publish`` after a review) and the backfill
goes on with the next date, exiting non-zero at the end. A date is skipped when its champion rows in history were all made by the champion version
the registry points at now (``--force`` scores it anyway).
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.ops.score import AuditFailedError, score_audited
from jobs.platform import CHAMPION, configure_mlflow, read_table, table_exists, version_by_alias
from jobs.scoring import ScoreResult, ScoringError, score_date
from schemas.settings import Settings, get_settings
from schemas.tables import PREDICTIONS_HISTORY


@dataclass(kw_only=True)
class BackfillResult:
    scored: list[ScoreResult] = field(default_factory=list)  # published
    skipped: list[dt.date] = field(default_factory=list)
    held: list[AuditFailedError] = field(default_factory=list)  # scored, failed the audit


def score_dates(start: dt.date, end: dt.date, *, step_days: int = 1) -> list[dt.date]:
    if end < start:
        raise ValueError(f"backfill end {end} is before start {start}")
    days = (end - start).days
    return [start + dt.timedelta(days=d) for d in range(0, days + 1, step_days)]


def scored_versions(
    spark: SparkSession, settings: Settings, *, dates: list[dt.date]
) -> dict[dt.date, set[str]]:
    """Champion model versions already in history, per score date of ``dates``."""
    if not dates or not table_exists(spark, settings, PREDICTIONS_HISTORY):
        return {}
    rows = (
        read_table(spark, settings, PREDICTIONS_HISTORY)
        .where(
            F.col("score_date").isin(list(dates))
            & (F.col("model_name") == settings.model.name)
            & (F.col("model_role") == CHAMPION)
        )
        .select("score_date", "model_version")
        .distinct()
        .collect()
    )
    out: dict[dt.date, set[str]] = {}
    for row in rows:
        out.setdefault(row.score_date, set()).add(row.model_version)
    return out


def backfill(
    spark: SparkSession,
    settings: Settings,
    *,
    start: dt.date,
    end: dt.date,
    step_days: int = 1,
    force: bool = False,
    record: bool = True,
) -> BackfillResult:
    dates = score_dates(start, end, step_days=step_days)
    champion = version_by_alias(
        configure_mlflow(settings), model_name=settings.model.name, alias=CHAMPION
    )
    if champion is None:
        raise ScoringError(f"model {settings.model.name!r} has no {CHAMPION!r} alias")
    done = {} if force else scored_versions(spark, settings, dates=dates)
    result = BackfillResult()
    for day in dates:
        if done.get(day) == {str(champion.version)}:
            result.skipped.append(day)
            continue
        if record:  # written, audited, published unless the audit failed
            try:
                scored = score_audited(spark, settings, score_date=day).result
            except AuditFailedError as exc:
                result.held.append(exc)
                continue
        else:
            scored = score_date(spark, settings, score_date=day)
        result.scored.append(scored)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--end", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--step-days", type=int, default=1)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    from jobs.platform import get_spark

    settings = get_settings()
    out = backfill(
        get_spark(settings),
        settings,
        start=args.start,
        end=args.end,
        step_days=args.step_days,
        force=args.force,
    )
    print(f"scored {[r.score_date.isoformat() for r in out.scored]}")
    print(f"skipped (same champion version) {[d.isoformat() for d in out.skipped]}")
    for held in out.held:
        print(f"held: {held}")
    if out.held:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
