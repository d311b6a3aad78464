"""When drift or realised quality says retrain: the pure decision the retrain sensor uses."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from jobs.monitoring.retrain_triggers import BacktestQuality, RunDrift, retrain_reason
from schemas.settings import RetrainSettings

pytestmark = pytest.mark.unit

LIMITS = RetrainSettings(
    drift_psi_max=0.2, feature_psi_max=0.25, backtest_auc_min=0.6, backtest_lift_min=1.0
)
DAY = dt.date(1998, 2, 1)


def run(**changes: object) -> RunDrift:
    fields: dict[str, object] = {
        "run_id": "r1",
        "score_date": DAY,
        "model_version": "3",
        "previous_score_date": DAY - dt.timedelta(days=1),
        "previous_model_version": "3",
        "score_psi": 0.05,
        "feature_psi": {"recency_days": 0.01, "frequency": 0.02},
    }
    return RunDrift(**{**fields, **changes})  # type: ignore[arg-type]


def backtest(**changes: object) -> BacktestQuality:
    fields: dict[str, object] = {
        "score_date": DAY - dt.timedelta(days=40),
        "model_version": "3",
        "auc": 0.75,
        "lift_top_decile": 3.0,
    }
    return BacktestQuality(**{**fields, **changes})  # type: ignore[arg-type]


def test_nothing_crossed_means_no_retrain() -> None:
    assert retrain_reason(run=run(), backtest=backtest(), limits=LIMITS) is None
    assert retrain_reason(run=None, backtest=None, limits=LIMITS) is None


def test_score_drift_past_the_limit_asks_for_a_retrain_keyed_by_the_run() -> None:
    reason = retrain_reason(run=run(score_psi=0.31), backtest=None, limits=LIMITS)
    assert reason is not None
    assert reason.run_key == "retrain-drift-r1"
    assert "score PSI 0.310 > 0.2" in reason.text
    assert "1998-02-01" in reason.text and "1998-01-31" in reason.text


def test_a_psi_equal_to_the_limit_is_within_it() -> None:
    assert retrain_reason(run=run(score_psi=0.2), backtest=None, limits=LIMITS) is None


def test_feature_drift_names_the_features_that_moved() -> None:
    reason = retrain_reason(
        run=run(feature_psi={"recency_days": 0.4, "frequency": 0.1, "monetary": 0.3}),
        backtest=None,
        limits=LIMITS,
    )
    assert reason is not None
    assert "recency_days PSI 0.400 > 0.25" in reason.text
    assert "monetary PSI 0.300 > 0.25" in reason.text
    assert "frequency" not in reason.text


def test_score_psi_after_a_champion_change_is_not_drift() -> None:
    moved = run(score_psi=0.9, previous_model_version="2")
    assert retrain_reason(run=moved, backtest=None, limits=LIMITS) is None
    # Features do not depend on the model: their drift still counts.
    both = run(score_psi=0.9, previous_model_version="2", feature_psi={"frequency": 0.5})
    reason = retrain_reason(run=both, backtest=None, limits=LIMITS)
    assert reason is not None and "score PSI" not in reason.text


def test_first_run_without_reference_is_not_drift() -> None:
    first = run(previous_score_date=None, previous_model_version=None, score_psi=None)
    assert retrain_reason(run=first, backtest=None, limits=LIMITS) is None


def test_backtest_below_the_auc_floor_asks_for_a_retrain_keyed_by_date_and_version() -> None:
    reason = retrain_reason(
        run=None, backtest=backtest(auc=0.55), limits=LIMITS, champion_version="3"
    )
    assert reason is not None
    assert reason.run_key == "retrain-backtest-1997-12-23-v3"
    assert "realised AUC 0.550 < 0.6" in reason.text


def test_backtest_lift_floor_and_nan_metrics() -> None:
    low_lift = retrain_reason(run=None, backtest=backtest(lift_top_decile=0.8), limits=LIMITS)
    assert low_lift is not None and "lift 0.80 < 1.0" in low_lift.text
    no_metrics = backtest(auc=math.nan, lift_top_decile=math.nan)
    assert retrain_reason(run=None, backtest=no_metrics, limits=LIMITS) is None


def test_backtest_of_a_replaced_champion_does_not_retrain() -> None:
    old = backtest(auc=0.5, model_version="2")
    assert retrain_reason(run=None, backtest=old, limits=LIMITS, champion_version="3") is None
    reason = retrain_reason(run=None, backtest=old, limits=LIMITS, champion_version="2")
    assert reason is not None


def test_drift_and_backtest_together_make_one_request() -> None:
    reason = retrain_reason(
        run=run(score_psi=0.5), backtest=backtest(auc=0.5), limits=LIMITS, champion_version="3"
    )
    assert reason is not None
    assert reason.run_key == "retrain-drift-r1-backtest-1997-12-23-v3"
    assert "score PSI" in reason.text and "realised AUC" in reason.text
