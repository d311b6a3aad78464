"""Regression metrics (the ``spend`` label) used by training, the gate and the MLflow run.

Errors (RMSE, MAE, R2) judge the amounts; the ranking metrics (Spearman, the
normalised Gini of the Lorenz curve, the share of the total amount that the top
decile of predictions holds) judge the order, which is what a campaign that
targets "the 10% who will spend most" relies on. Ties among predictions count as
one block (their average), so no metric depends on row order and a constant
prediction has a Gini of exactly 0 and a top-decile share of exactly 0.1.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def _lorenz_area(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the Lorenz curve of ``y`` with rows ordered by ``p`` ascending, ties as blocks."""
    order = np.argsort(p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    # The last row of every block of equal predictions: the Lorenz curve's vertices.
    ends = np.flatnonzero(np.r_[p_sorted[1:] != p_sorted[:-1], True])
    x = np.r_[0.0, (ends + 1) / len(y)]
    cum = np.cumsum(y_sorted)
    share = np.r_[0.0, cum[ends] / cum[-1]]
    return float(np.sum((x[1:] - x[:-1]) * (share[1:] + share[:-1]) / 2.0))


def normalized_gini(y_true: np.ndarray, predictions: np.ndarray) -> float:
    """Gini of the amounts ranked by the predictions, over the Gini of the perfect ranking.

    1: ranks exactly like the truth; 0: no better than a constant; NaN when every amount
    is equal (nothing to rank).
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(predictions, dtype=float)
    if len(y) == 0 or y.sum() <= 0 or np.all(y == y[0]):
        return float("nan")
    best = 1.0 - 2.0 * _lorenz_area(y, y)
    return float((1.0 - 2.0 * _lorenz_area(y, p)) / best)


def top_decile_share(y_true: np.ndarray, predictions: np.ndarray) -> float:
    """Share of the total amount held by the 10% of rows with the highest predictions.

    The decile is exactly 10% of the rows (a fraction of a row at its edge), and rows
    tied with its lowest prediction count in proportion (their mean amount), so a
    constant prediction (or a random ranking, on average) holds exactly 0.1.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(predictions, dtype=float)
    total = float(y.sum()) if len(y) else 0.0
    if total <= 0.0:
        return float("nan")
    k = len(y) * 0.1
    threshold = np.sort(p)[::-1][int(np.ceil(k)) - 1]
    above = p > threshold
    tied = p == threshold
    held = y[above].sum() + (k - above.sum()) * y[tied].mean()
    return float(held / total)


def regression_metrics(y_true: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Every metric the regression gate and the MLflow run report, on one set of rows."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(predictions, dtype=float)
    if len(y) != len(p):
        raise ValueError(f"{len(y)} labels but {len(p)} predictions")
    if np.isnan(p).any():
        raise ValueError(f"predictions contain {int(np.isnan(p).sum())} NaN values")
    err = p - y
    variance = float(np.var(y)) if len(y) else 0.0
    ranked = len(y) > 1 and np.ptp(y) > 0 and np.ptp(p) > 0
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1.0 - np.mean(err**2) / variance) if variance > 0 else float("nan"),
        "spearman": float(spearmanr(y, p).statistic) if ranked else float("nan"),
        "gini": normalized_gini(y, p),
        "top_decile_share": top_decile_share(y, p),
        "mean_prediction": float(np.mean(p)),
        "mean_label": float(np.mean(y)),
        "zero_share": float(np.mean(y == 0.0)),
        "rows": float(len(y)),
    }
