"""The paired bootstrap: its weighted metrics equal the unweighted ones on repeated rows,
it is deterministic, and its interval separates a real gain from noise (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from jobs.training.bootstrap import (
    compare,
    weighted_auc,
    weighted_gini,
    weighted_log_loss,
    weighted_rmse,
)
from jobs.training.metrics_regression import normalized_gini

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 4000
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(signal - 2)))).astype(float)
    weak = 1 / (1 + np.exp(-(0.5 * signal + rng.normal(size=n) - 2)))
    strong = 1 / (1 + np.exp(-(signal - 2)))
    return y, np.round(weak, 2), strong  # rounding makes ties


def test_integer_weights_equal_repeating_the_rows(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    y, weak, _ = rows
    w = np.random.default_rng(0).poisson(1.0, size=len(y)).astype(float)
    reps = w.astype(int)
    y_rep, s_rep = np.repeat(y, reps), np.repeat(weak, reps)
    amounts = np.abs(weak * 100 + y * 30)
    assert weighted_auc(y, weak)(w[None, :])[0] == pytest.approx(roc_auc_score(y_rep, s_rep))
    assert weighted_log_loss(y, weak)(w[None, :])[0] == pytest.approx(log_loss(y_rep, s_rep))
    rmse = np.sqrt(np.mean((s_rep - y_rep) ** 2))
    assert weighted_rmse(y, weak)(w[None, :])[0] == pytest.approx(rmse)
    gini = normalized_gini(np.repeat(amounts, reps), s_rep)
    assert weighted_gini(amounts, weak)(w[None, :])[0] == pytest.approx(gini)


def test_a_real_gain_has_an_interval_above_zero_and_noise_does_not(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    y, weak, strong = rows
    gain = compare(
        "binary", y, candidate=strong, champion=weak, resamples=500, confidence=0.95, seed=1
    )
    assert gain.primary.low > 0
    assert gain.primary.estimate == pytest.approx(roc_auc_score(y, strong) - roc_auc_score(y, weak))
    assert gain.primary.low < gain.primary.estimate < gain.primary.high
    jitter = strong + np.random.default_rng(9).normal(scale=1e-3, size=len(y))
    noise = compare(
        "binary", y, candidate=jitter, champion=strong, resamples=500, confidence=0.95, seed=1
    )
    assert noise.primary.low < 0 < noise.primary.high


def test_the_same_seed_gives_the_same_interval(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    y, weak, strong = rows
    args = {"candidate": strong, "champion": weak, "resamples": 300, "confidence": 0.9}
    first = compare("binary", y, seed=5, **args)
    assert compare("binary", y, seed=5, **args) == first
    assert compare("binary", y, seed=6, **args) != first


def test_regression_intervals_are_of_rmse_reduction_and_gini(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    y, weak, strong = rows
    amounts = y * 50.0
    better = compare(
        "regression",
        amounts,
        candidate=strong * 50,
        champion=weak * 50,
        resamples=300,
        confidence=0.95,
        seed=2,
    )
    assert better.primary.metric == "rmse_reduction" and better.secondary.metric == "gini"
    assert better.secondary.estimate == pytest.approx(
        normalized_gini(amounts, strong * 50) - normalized_gini(amounts, weak * 50)
    )
    assert better.secondary.low > 0
