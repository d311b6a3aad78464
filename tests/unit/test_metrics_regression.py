"""Regression metrics and the prediction checks of the spend label (pure numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jobs.training.metrics_regression import normalized_gini, regression_metrics, top_decile_share
from jobs.training.validation import prediction_problems

pytestmark = pytest.mark.unit

Y = np.array([0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 50.0, 0.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0])


def test_errors_on_known_values() -> None:
    m = regression_metrics(np.array([0.0, 2.0, 4.0]), np.array([1.0, 2.0, 1.0]))
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 9) / 3))
    assert m["mae"] == pytest.approx(4 / 3)
    assert m["r2"] == pytest.approx(1 - (10 / 3) / np.var([0.0, 2.0, 4.0]))
    assert (m["mean_label"], m["zero_share"], m["rows"]) == (2.0, pytest.approx(1 / 3), 3.0)


def test_perfect_ranking_and_constant_prediction() -> None:
    assert normalized_gini(Y, Y) == pytest.approx(1.0)
    assert normalized_gini(Y, Y * 3 + 1) == pytest.approx(1.0)  # only the order matters
    assert normalized_gini(Y, np.full(len(Y), 7.0)) == pytest.approx(0.0)
    assert normalized_gini(Y, -Y) < 0.0
    constant = regression_metrics(Y, np.full(len(Y), Y.mean()))
    assert constant["top_decile_share"] == pytest.approx(0.1)
    assert math.isnan(constant["spearman"])
    assert constant["r2"] == pytest.approx(0.0)


def test_top_decile_share_counts_ties_in_proportion() -> None:
    # 15 rows: the top decile is 1.5 rows; the best row holds 100 of 160, then half a row
    # of a tied pair (50 and 10: 30 on average).
    p = np.zeros(len(Y))
    p[9], p[7], p[4] = 3.0, 2.0, 2.0
    assert top_decile_share(Y, p) == pytest.approx((100 + 0.5 * 30) / 160)
    assert top_decile_share(Y, Y) == pytest.approx((100 + 0.5 * 50) / 160)
    assert math.isnan(top_decile_share(np.zeros(5), np.ones(5)))


def test_spend_predictions_must_be_finite_non_negative_amounts() -> None:
    assert prediction_problems(np.array([0.0, 12.5, 300.0]), task="regression") == []
    problems = prediction_problems(np.array([np.nan, -0.1, np.inf, 3.0]), task="regression")
    assert problems == [
        "1 of 4 holdout predictions are NaN",
        "1 holdout predictions are infinite",
        "1 holdout predictions are negative amounts",
    ]
    # The same amounts are not probabilities: the binary check refuses them.
    assert prediction_problems(np.array([0.5, 12.5]), task="binary") == [
        "1 holdout predictions are outside [0, 1]"
    ]
