"""Backfill, score_runs monitoring and its limits, catalog registration, customer history."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest

from cli.history import customer_history
from jobs.monitoring.score_runs import ScoreRun, limit_failures
from jobs.ops.backfill import BackfillResult, backfill
from jobs.platform.catalog import register_catalog
from jobs.platform.lake import read_table
from schemas.settings import Settings
from schemas.tables import SCORE_RUNS
from tests.integration.test_score import isolated
from tests.integration.test_scoring_support import register_tiny_model, write_feature_partition

pytestmark = pytest.mark.integration

D0, D1, D2 = dt.date(2024, 5, 1), dt.date(2024, 5, 2), dt.date(2024, 5, 3)
N = 800


@pytest.fixture(scope="module")
def nights(
    spark: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, BackfillResult, BackfillResult]:
    s = isolated(settings, tmp_path_factory.mktemp("monitoring"))
    register_tiny_model(s, trees=15, train_rows=2_000)
    write_feature_partition(spark, s, as_of=D0, customers=N, seed=1)
    write_feature_partition(spark, s, as_of=D1, customers=N, seed=2)
    write_feature_partition(spark, s, as_of=D2, customers=N, seed=3, shift=2.0)  # drifted
    first = backfill(spark, s, start=D0, end=D1)
    second = backfill(spark, s, start=D0, end=D2)
    return s, first, second


def _runs(spark: Any, s: Settings) -> dict[dt.date, ScoreRun]:
    rows = read_table(spark, s, SCORE_RUNS).collect()
    return {r.score_date: ScoreRun(**r.asDict()) for r in rows}


def test_backfill_skips_dates_scored_with_the_same_champion(nights: Any) -> None:
    _, first, second = nights
    assert [r.score_date for r in first.scored] == [D0, D1]
    assert first.skipped == []
    assert second.skipped == [D0, D1]
    assert second.scored == []  # D2 drifted: scored into history, held back by its audit
    assert [h.run.score_date for h in second.held] == [D2]
    assert set(second.held[0].failures) == {"drift"}


def test_every_run_has_a_score_runs_row(spark: Any, nights: Any) -> None:
    s, first, second = nights
    runs = _runs(spark, s)
    assert set(runs) == {D0, D1, D2}
    held = {h.run.run_id for h in second.held}
    assert {r.run_id for r in runs.values()} == {r.run_id for r in first.scored} | held
    for run in runs.values():
        assert run.customers_known == run.customers_scored == N
        assert run.coverage == 1.0
        assert 0.0 < run.score_p01 <= run.score_p50 <= run.score_p99 < 1.0
        assert run.duration_s is not None and math.isfinite(run.duration_s)  # recorded
    assert runs[D0].previous_score_date is None and runs[D0].score_psi is None
    assert runs[D1].previous_score_date == D0
    assert set(runs[D1].feature_psi) and len(runs[D1].feature_psi) <= s.scoring.drift_features


def test_limits_pass_a_stable_night_and_fail_a_drifted_one(spark: Any, nights: Any) -> None:
    s, _, _ = nights
    runs = _runs(spark, s)
    assert limit_failures(runs[D1], s) == {}
    failures = limit_failures(runs[D2], s)
    assert set(failures) == {"drift"}
    assert "PSI" in failures["drift"]
    thin = dataclasses.replace(runs[D1], customers_scored=N // 2, coverage=0.5)
    assert "coverage 0.5000" in limit_failures(thin, s)["coverage"]


def test_tables_answer_plain_sql_after_registration(spark: Any, nights: Any) -> None:
    s, _, _ = nights
    names = register_catalog(spark, s)
    try:
        assert {"predictions.history", "predictions.current", "monitoring.score_runs"} <= set(names)
        per_day = spark.sql(
            "SELECT score_date, count(*) AS n FROM predictions.history GROUP BY score_date"
        ).collect()
        assert {(r.score_date, r.n) for r in per_day} == {(D0, N), (D1, N), (D2, N)}
        assert spark.sql("SELECT count(*) FROM monitoring.score_runs").first()[0] == 3
    finally:
        for name in names:
            spark.sql(f"DROP TABLE IF EXISTS {name}")


def test_one_customers_history_newest_first(nights: Any, tmp_path: Path) -> None:
    s, _, _ = nights
    rows = customer_history(s, customer_id="C0000007")
    assert [r["score_date"] for r in rows] == [D2, D1, D0]
    assert {r["model_role"] for r in rows} == {"champion"}
    assert customer_history(s, customer_id="nobody") == []


def test_backtest_once_labels_matured(spark: Any, nights: Any) -> None:
    from jobs.monitoring.backtests import run_matured_backtests
    from jobs.platform.lake import ensure_table, table_path
    from schemas.tables import BACKTESTS, SILVER_ORDERS

    s, _, _ = nights
    horizon = s.model.horizon_days
    # Even customers order once inside D0's label window; nobody orders after it.
    orders = [
        (f"o{i}", f"C{i:07d}", D0 + dt.timedelta(days=i % horizon), 1, 10.0, "b")
        for i in range(0, N, 2)
    ]
    ensure_table(spark, s, SILVER_ORDERS)
    spark.createDataFrame(orders, SILVER_ORDERS.ddl).write.format("delta").mode("append").save(
        table_path(s, SILVER_ORDERS)
    )
    assert run_matured_backtests(spark, s, as_of=D0 + dt.timedelta(days=horizon - 1)) == []
    assert run_matured_backtests(spark, s, as_of=D0 + dt.timedelta(days=horizon)) == [D0]
    [row] = read_table(spark, s, BACKTESTS).collect()
    assert (row.score_date, row.model_role, row.customers, row.positives) == (
        D0,
        "champion",
        N,
        N // 2,
    )
    assert row.base_rate == 0.5 and 0.0 <= row.auc <= 1.0 and row.lift_top_decile >= 0.0
    assert run_matured_backtests(spark, s, as_of=D0 + dt.timedelta(days=horizon)) == []
