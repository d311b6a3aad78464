"""Holdout metrics: lift, calibration, and refusal of NaN scores."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.training.metrics import (
    binary_metrics,
    calibration_table,
    expected_calibration_error,
    top_decile_lift,
)
from jobs.training.validation import prediction_problems

pytestmark = pytest.mark.unit


def test_top_decile_lift_of_a_perfect_ranking() -> None:
    y = np.array([1.0] * 10 + [0.0] * 90)
    scores = np.linspace(1.0, 0.0, 100)
    assert top_decile_lift(y, scores) == pytest.approx(10.0)


def test_constant_scores_have_lift_one_whatever_the_row_order() -> None:
    y = np.array([1.0] * 10 + [0.0] * 90)
    assert top_decile_lift(y, np.full(100, 0.3)) == pytest.approx(1.0)
    assert top_decile_lift(y[::-1], np.full(100, 0.3)) == pytest.approx(1.0)


def test_calibration_error_is_zero_when_predictions_match_rates() -> None:
    rng = np.random.default_rng(0)
    p = np.repeat([0.1, 0.5], 1000)
    y = np.concatenate([np.r_[np.ones(100), np.zeros(900)], np.r_[np.ones(500), np.zeros(500)]])
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.0)
    inflated = np.clip(p * 2, 0, 1)
    assert expected_calibration_error(y, inflated, bins=2) == pytest.approx(0.3)
    table = calibration_table(y, rng.permutation(p), bins=4)
    assert table["rows"].sum() == 2000


def test_binary_metrics_refuse_nan_scores() -> None:
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics(np.array([0.0, 1.0]), np.array([0.2, np.nan]))


def test_prediction_problems_name_nan_and_out_of_range() -> None:
    problems = prediction_problems(np.array([0.1, np.nan, 1.5]))
    assert any("NaN" in p for p in problems)
    assert any("outside [0, 1]" in p for p in problems)
    assert prediction_problems(np.array([0.0, 0.5, 1.0])) == []


def test_binary_metrics_of_a_good_model() -> None:
    y = np.array([0, 0, 0, 1, 1], dtype=float)
    m = binary_metrics(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9]))
    assert m["roc_auc"] == pytest.approx(1.0)
    assert m["rows"] == 5 and m["base_rate"] == pytest.approx(0.4)
