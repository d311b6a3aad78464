"""A backfill through the CLI leaves one history partition and one report per date, and the
last night backtests the first (its 30-day label window closed in between)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F
from typer.testing import CliRunner

from cli.main import app
from jobs.platform.lake import read_table
from schemas.settings import Settings
from schemas.tables import BACKTESTS, PREDICTIONS_CURRENT, PREDICTIONS_HISTORY

# Three whole nights (about two minutes): the slow tier. The default tier covers the same
# path per night (tests/e2e/test_night.py) and the audited backfill (test_monitoring.py).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DATES = [dt.date(1997, 11, 1), dt.date(1997, 11, 18), dt.date(1997, 12, 5)]


def test_backfill_three_nights(spark: Any, settings: Settings) -> None:
    result = CliRunner().invoke(
        app, ["backfill", "--start", "1997-11-01", "--end", "1997-12-05", "--step-days", "17"]
    )
    assert result.exit_code == 0, result.output
    history = read_table(spark, settings, PREDICTIONS_HISTORY).where(
        F.col("score_date").isin(DATES) & (F.col("model_role") == "champion")
    )
    per_date = {
        r["score_date"]: r["n"]
        for r in history.groupBy("score_date").agg(F.count("*").alias("n")).collect()
    }
    assert sorted(per_date) == DATES
    # one row per customer per night, never duplicated by a re-run
    for day in DATES:
        n_customers = (
            history.where(F.col("score_date") == day).select("customer_id").distinct().count()
        )
        assert per_date[day] == n_customers
    for day in DATES:
        report = Path(settings.data_dir) / "reports" / day.isoformat() / "nightly.html"
        assert report.exists(), report
        assert f"night {day}" in report.read_text()
    # current holds the newest night for every customer
    current = read_table(spark, settings, PREDICTIONS_CURRENT)
    assert current.agg(F.max("score_date")).first()[0] >= DATES[-1]  # type: ignore[index]
    assert current.count() == current.select("customer_id").distinct().count()
    # The night of 1997-12-05 backtested 1997-11-01 (labels [11-01, 12-01) are all in), only it.
    backtests = read_table(spark, settings, BACKTESTS).where(F.col("model_role") == "champion")
    rows = {r["score_date"]: r for r in backtests.collect()}
    assert DATES[0] in rows and DATES[1] not in rows and DATES[2] not in rows
    first = rows[DATES[0]]
    assert first["customers"] == per_date[DATES[0]]
    assert 0.5 < first["auc"] < 1.0 and first["lift_top_decile"] > 1.0
