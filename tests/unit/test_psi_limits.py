"""The monitoring limits and backfill date ranges, as pure functions (no Spark session)."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from jobs.monitoring.psi import population_stability_index
from jobs.monitoring.score_runs import ScoreRun, limit_failures
from jobs.ops.backfill import score_dates
from schemas.settings import Settings

pytestmark = pytest.mark.unit


def _run(**changes: object) -> ScoreRun:
    base: dict[str, object] = {
        "run_id": "r1",
        "score_date": dt.date(2024, 1, 2),
        "model_name": "m",
        "model_version": "1",
        "customers_known": 1000,
        "customers_scored": 1000,
        "coverage": 1.0,
        **{k: 0.5 for k in ("score_p01", "score_p10", "score_p50", "score_p90", "score_p99")},
        "score_mean": 0.5,
        "previous_score_date": dt.date(2024, 1, 1),
        "score_psi": 0.01,
        "feature_psi_json": json.dumps({"recency_days": 0.02}),
        "duration_s": 1.0,
        "feature_table_version": 3,
        "history_version": 4,
        "recorded_at": dt.datetime(2024, 1, 2, 3),
    }
    return ScoreRun(**{**base, **changes})  # type: ignore[arg-type]


def test_a_run_within_limits_has_no_failures() -> None:
    assert limit_failures(_run(), Settings()) == {}


def test_low_coverage_names_the_counts_and_the_floor() -> None:
    failures = limit_failures(_run(customers_scored=900, coverage=0.9), Settings())
    assert set(failures) == {"coverage"}
    assert "900 of 1000" in failures["coverage"] and "0.99" in failures["coverage"]


def test_score_and_feature_drift_are_named() -> None:
    run = _run(score_psi=0.4, feature_psi_json=json.dumps({"recency_days": math.inf, "x": 0.1}))
    drift = limit_failures(run, Settings())["drift"]
    assert "score PSI 0.400" in drift and "recency_days PSI inf" in drift and "x PSI" not in drift


def test_a_feature_gone_all_null_fails_the_drift_limit() -> None:
    values = np.random.default_rng(0).normal(size=1_000)
    psi = population_stability_index(values, np.full(1_000, np.nan))
    run = _run(feature_psi_json=json.dumps({"recency_days": psi, "x": 0.1}))
    drift = limit_failures(run, Settings())["drift"]
    assert "recency_days PSI" in drift and "x PSI" not in drift


def test_an_undefined_feature_psi_is_none_not_zero() -> None:
    run = _run(feature_psi_json=json.dumps({"recency_days": None, "x": 0.1}))
    assert run.feature_psi == {"recency_days": None, "x": 0.1}
    assert limit_failures(run, Settings()) == {}  # no rows on either date: nothing compared


def test_first_run_has_no_drift_reference() -> None:
    run = _run(previous_score_date=None, score_psi=None, feature_psi_json="{}")
    assert limit_failures(run, Settings()) == {}


def test_backfill_dates_are_inclusive_and_stepped() -> None:
    start = dt.date(2024, 1, 1)
    assert score_dates(start, dt.date(2024, 1, 15), step_days=7) == [
        start,
        dt.date(2024, 1, 8),
        dt.date(2024, 1, 15),
    ]
    with pytest.raises(ValueError, match="before start"):
        score_dates(start, dt.date(2023, 12, 31))
